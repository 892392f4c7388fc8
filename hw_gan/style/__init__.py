"""Writer style: adding a new writer to a trained multi-writer model (`hw_gan.style.adapt`)."""

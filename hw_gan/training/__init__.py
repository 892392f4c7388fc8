"""GAN training: strategies and precision (strategy.py), the shared trainer (trainer.py)."""

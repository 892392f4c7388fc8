"""hwgan: conditional GANs for handwritten glyphs (Keras 3 on TensorFlow).

Subpackages: `hw_gan.models` (generator / discriminator families), `hw_gan.losses`,
`hw_gan.training`; `hw_gan.config` holds the frozen configuration tree.
"""

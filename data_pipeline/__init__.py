"""hwgan's data pipeline: sources of glyph records -> sharded TFRecords -> tf.data.

Nothing here imports hw_gan; the models and training sit above this package.
"""

"""hwgan's data pipeline: sources of glyph records -> sharded TFRecords -> tf.data.

  schema, charset, glyph, strokes, progress, atomic   records, labels, tiling, drawing, writes
  sources/     one opener per data source (simulated, ink, emnist, scans)
  scan/        scans or photos of filled-in templates -> glyph images (template.py: the sheets)
  tfrecords    dataset directories on disk: writing, manifest, records, verification
  dataset      reading a dataset for a model: tf.data pipelines, splits as NumPy arrays
  build        build / extract a dataset, and `python -m data_pipeline.build`

This is the lowest floor: nothing here imports hw_gan (the models, training and the `hwgan`
commands sit above it). Modules are imported by name (`from data_pipeline import tfrecords`);
importing the package itself loads none of them.
"""

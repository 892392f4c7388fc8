"""hwgan: learns a person's handwriting and writes new text in it (Keras 3 on TensorFlow).

Floors, lowest first; a package imports only from the floors below it (see docs/ARCHITECTURE.md):

  hw_gan.config        every configuration dataclass, validated and frozen (FAMILIES, MODES)
  hw_gan.losses        pure loss functions
  hw_gan.models        generator / discriminator families and the StyleGAN style encoder
  hw_gan.training      make_trainer, the GAN trainers, tf.distribute set-up, run directories
  hw_gan.evaluation    judges, metrics (FID, KID, legibility, writer match), eval.json
  hw_gan.layout        text -> glyph requests -> lines and pages (pure NumPy)
  hw_gan.inversion     glyphs -> a StyleGAN style (encoder + projection), style files
  hw_gan.export        the SavedModel: module, export, loader, signatures (glyphs, style, write)
  hw_gan.adaptation    add a new writer to a trained char+writer model
  hw_gan.render        text in a hand from an export: glyph sources, pages, PNG/SVG/PDF output
  hw_gan.experiment    what each --mode does (train, evaluate, export, sample, adapt)
  hw_gan.serve         TF Serving's REST API plus :write, over HTTP
  hw_gan.cli           the `hwgan` command, one module per verb; train_main.py is `hwgan train`

The data pipeline (records, datasets, sources, scanned sheets) is the package `data_pipeline`,
below all of these. Importing `hw_gan` imports none of its subpackages.
"""

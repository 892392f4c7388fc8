"""Adapting a trained style_cgan to a new writer from a few of their glyphs.

Owns: the new writer's data (data.py), growing the base by one writer (surgery.py), the
adaptation's training steps (steps.py), the Adapter with its start, phases and selection
(adapter.py), the command that writes the adapted run and its export (run.py: prepare,
adapt) and the adapted generator as plain numbers, to move a writer without a SavedModel
(portable.py: `hwgan app`'s hand files). Its settings are hw_gan.config.AdaptConfig. Imports
only lower floors (data_pipeline, hw_gan.config, hw_gan.losses, hw_gan.models,
hw_gan.training, hw_gan.evaluation, hw_gan.export); never hw_gan.render, experiment, serve or
cli.

    python train_main.py --flagfile=configs/adapt_writer.cfg --writer_data=DIR --init=RUN_DIR \
        --writer_name=alice --model_dir=runs/alice

1. The base run (--init: a model directory with checkpoints/, or one checkpoint prefix such as
   runs/quickstart/checkpoints/ckpt-6000) is restored with its own config.json / dataset.json.
2. The writer is ADDED: the generator's and the discriminator's "writer_embedding" (and the
   auxiliary writer head, if the base has one) grow by one row; the new writer's id is the old
   writer count. The adapted generator starts from the base's EMA generator (the one that is
   exported).
3. Start (`start`): "nearest" (default) starts the new rows as the mean of the rows of the
   `start_top` base writers whose generated glyphs are closest to the writer's glyphs (among the
   writers the base was trained on: `trained_writers`); "mean" starts from the mean of those
   writers' rows. The distance (`pixel_distances`): for each of the
   writer's glyphs x of character c, the mean |x - G(z_j, c, w)| of the closest of `samples`
   draws (a best-of-m reconstruction error, so a writer whose hand can produce x scores well
   however varied it is), averaged over the glyphs. Averaging a few nearest rows beats the single
   nearest one on real writers (docs/results.md): their common traits are the writer's, their
   quirks cancel out.
4. Embedding phase (`steps` steps): only the new rows are optimised with the base's GAN loss on
   the writer's glyphs - G's new style row, and D's new projection row (D learns which feature
   direction tells this writer's real glyphs from generated ones). Every other weight is frozen,
   so the base writers' glyphs are unchanged bit for bit. With 40-100 glyphs this can also pull
   the style away from the writer (D's new row fits a few glyphs' quirks), so every
   `select_every` steps the row is scored by the same pixel distance on the writer's glyphs and
   the best row seen - the start included - is kept (adapt.json: "selection").
   With `objective="projection"` the phase instead fits G's new row alone to reconstruct the
   writer's glyphs (`steps.projection_step`: best-of-`samples` pixel L1 + `feature_weight` x
   L1 of D's image features, as the StyleGAN route's projection), either as a free row
   (`space="row"`, optionally pulled to the start by `anchor`) or as a softmax blend of the
   trained writers' rows (`space="writers"`, starting from the start's weights). On real
   writers it brings the glyph shapes closer (character judge) but the hand further away
   (writer judge): docs/results.md.
5. Optional fine-tune (`finetune_steps` > 0): with `finetune_objective="gan"` (small
   `finetune_lr`) every generator weight except the base writers' embedding rows is trained with
   the base's GAN loss as well (D still adapts only its new row). With "pivotal" (pivotal tuning,
   `steps.pivotal_step`) the new row is kept as the pivot and the generator's other weights are
   tuned so that the pivot reproduces the writer's glyphs (best-of-`finetune_samples` pixel L1 +
   `feature_weight` x L1 of D's features), while `locality` x |G - G_base| on random glyphs of
   the base writers keeps their styles; D is frozen. Both change the base writers' glyphs a
   little; adapt.json reports by how much ("base_writer_drift"). The fine-tune is skipped (said
   in adapt.json) when the writer's data give fewer than `finetune_min_variants` glyphs per
   character: configs/adapt_writer.cfg runs pivotal tuning from 1.5 up (a filled-in default
   template gives 3), where it brought real held-out writers closer than any base writer; on one
   glyph per character it fitted the glyphs rather than the hand (docs/results.md).
Characters absent from the writer's data are still drawn in their style (the char embedding is
shared); adapt.json lists them under "unseen_chars".

Output (--model_dir, must not hold a run yet): config.json / dataset.json (the grown model: base
config with num_writers + 1 and data_dir = --writer_data; writers = base writers + the new name),
adaptation.json (the settings), a checkpoint in the trainer's layout (GANTrainer of that config
restores it; its optimizer slots are fresh), adapt.json (the report) and, with --export_dir, a
SavedModel export whose writers are the base writers + the new writer's name. (train_main's own
--mode=export/evaluate cannot be pointed at it: its dataset check wants a dataset holding all
base writers + the new one.)
"""


from __future__ import annotations

from hw_gan.adaptation.adapter import STEP_KEYS, Adapter
from hw_gan.adaptation.data import (load_writer_data, trained_writers, variants_per_char,
                                    writer_geometry)
from hw_gan.adaptation.run import ADAPTATION_FILE, REPORT_FILE, adapt, load_base, prepare
from hw_gan.adaptation.surgery import EMBEDDING, copy_grown, copy_head, grow_trainer, grown_config
from hw_gan.config import (FINETUNE_OBJECTIVES, OBJECTIVES, SPACES, STARTS, AdaptConfig,
                           AdaptError)

__all__ = [
    "ADAPTATION_FILE", "EMBEDDING", "FINETUNE_OBJECTIVES", "OBJECTIVES", "REPORT_FILE", "SPACES",
    "STARTS", "STEP_KEYS", "AdaptConfig", "AdaptError", "Adapter", "adapt", "copy_grown",
    "copy_head", "grow_trainer", "grown_config", "load_base", "load_writer_data", "prepare",
    "trained_writers", "variants_per_char", "writer_geometry",
]

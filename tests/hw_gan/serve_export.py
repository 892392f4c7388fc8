"""A tiny untrained stylegan export with every signature (glyphs, glyphs_by_id, metadata, write,
extract_style, glyphs_with_style, mean_style) and small caps, and a server over it, shared by
tests/hw_gan/test_serve_limits.py and test_serve_fuzz.py (built in ~7 s)."""

from __future__ import annotations

import contextlib
import io
import threading

from hw_gan import export
from hw_gan.export.signatures.write import write_signature_builder

CHARS = "abcde"
RES = 32
NAME = "sg"
# The export's own caps (checked in the graph) ...
LIMITS = export.ExportLimits(max_glyphs=64, max_pixels=64 * RES * RES, max_style_images=8,
                             max_style_steps=3)
WRITE_CAPS = dict(max_glyphs=64, max_text_chars=200, max_pixels=300_000, max_line_width=4000)
# ... and the server's budgets, some above the export's caps so that both refuse something.
BUDGET = dict(max_text_chars=150, max_glyphs=100, max_pixels=200_000)
MAX_BODY = 64 * 1024


_BUILT: dict = {}


def shared_export(tmp_path_factory):
    """build_export once per test session (both serve test modules use it)."""
    if "path" not in _BUILT:
        _BUILT["path"] = build_export(tmp_path_factory.mktemp("serve_sg_export"))
    return _BUILT["path"]


def build_export(root):
    """-> the version directory of the export."""
    import keras

    from hw_gan.config import ModelConfig
    from hw_gan.models import stylegan
    from hw_gan.models.stylegan_encoder import StyleEncoder

    cfg = ModelConfig(family="stylegan", resolution=RES, width=0.125, latent_dim=16,
                      embed_dim=32, num_chars=len(CHARS), num_writers=0)
    keras.utils.set_random_seed(0)
    generator = stylegan.build_generator(cfg)
    return export.export_model(generator, cfg, list(CHARS), [], root, NAME,
                               encoder=StyleEncoder(cfg), limits=LIMITS,
                               extra_signatures={"write": write_signature_builder(**WRITE_CAPS)})


@contextlib.contextmanager
def running_server(version_dir, **options):
    """A server on 127.0.0.1 (free port) in a thread, with make_server's `options` (default:
    this module's budgets); its log is `.app.log` (a StringIO)."""
    from hw_gan.serve import make_server

    options = {"max_body_bytes": MAX_BODY, "max_concurrent": 2, **BUDGET, **options}
    srv = make_server(version_dir, "127.0.0.1", 0, log=io.StringIO(), **options)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)

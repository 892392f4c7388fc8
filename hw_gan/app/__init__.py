"""`hwgan app`: a local web page from filled-in sheets to a letter.

hw_gan.app owns the page (static/: HTML, CSS and JavaScript shipped in the package; nothing from
a CDN), its HTTP (server: a Starlette application under uvicorn, with the Host/Origin rules of
hw_gan.serve and the upload limits), the work behind it (studio: sheets, review, hands, writing;
it calls the same library functions as `hwgan template / extract / style / write` and the
adaptation), what it keeps on disk (store) and its one background job at a time (jobs). It sits
beside hw_gan.serve (whose caller checks it reuses) and must not import hw_gan.cli.

    hwgan app --model export/unipen_stylegan_cpu [--base runs/unipen_style_cgan_cpu] \\
              [--port 8080] [--data DIR]
"""

from __future__ import annotations

import sys

from hw_gan.app.server import serve
from hw_gan.app.studio import Studio, StudioConfig, default_data_dir


def run_app(cfg: StudioConfig, host: str = "127.0.0.1", port: int = 8080, **kw) -> int:
    """Loads the model, then serves the page until interrupted."""
    studio = Studio(cfg)
    studio.warm()

    def ready(url: str) -> None:
        print(f"hwgan app: open {url}/ in your browser (data in {cfg.data_dir})",
              file=sys.stderr, flush=True)

    try:
        serve(studio, host, port, ready=ready, **kw)
    except KeyboardInterrupt:
        pass
    return 0


__all__ = ["Studio", "StudioConfig", "default_data_dir", "run_app"]

"""`hwgan serve`: an exported model behind TF Serving's REST API plus :write (see hw_gan.serve).

  hwgan serve --model export/quickstart [--host 127.0.0.1] [--port 8501] [--model_name NAME]
              [--max_body_bytes 1048576] [--max_text_chars 5000] [--max_concurrent 4]
              [--max_glyphs 5000] [--max_pixels 16777216] [--allow_origin O] [--allow_host H]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from hw_gan.serve import (DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT,
                          DEFAULT_MAX_GLYPHS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TEXT_CHARS,
                          DEFAULT_PORT, make_server)


def port_type(text: str) -> int:
    """argparse type of --port: 0..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: give 0..65535 (0 picks a free "
                                         "one)")
    return port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwgan serve", description="Serve an exported model over "
                                "TF Serving's REST API (/v1/models/NAME:predict, metadata, "
                                "status) plus :write (text -> PNG/PDF/SVG).")
    p.add_argument("--model", required=True, help="a shipped model's name (`hwgan models`) or "
                   "an export directory (NAME or NAME/VERSION)")
    p.add_argument("--model_name", "--model-name", dest="model_name",
                   help="name in the URLs (default: the export's directory name)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1; "
                   "0.0.0.0 exposes the server to the network: there is no authentication)")
    p.add_argument("--port", type=port_type, default=DEFAULT_PORT, help="default 8501 (TF "
                   "Serving's REST port); 0 picks a free one")
    p.add_argument("--max_body_bytes", "--max-body-bytes", dest="max_body_bytes", type=int,
                   default=DEFAULT_MAX_BODY_BYTES, help="larger request bodies get 413")
    p.add_argument("--max_text_chars", "--max-text-chars", dest="max_text_chars", type=int,
                   default=DEFAULT_MAX_TEXT_CHARS, help="longer :write texts get 413")
    p.add_argument("--max_concurrent", "--max-concurrent", dest="max_concurrent", type=int,
                   default=DEFAULT_MAX_CONCURRENT, help="predict/write requests run at once; "
                   "more get 503")
    p.add_argument("--max_glyphs", "--max-glyphs", dest="max_glyphs", type=int,
                   default=DEFAULT_MAX_GLYPHS, help="glyphs drawn per request; more get 413")
    p.add_argument("--max_pixels", "--max-pixels", dest="max_pixels", type=int,
                   default=DEFAULT_MAX_PIXELS, help="pixels returned per request (glyph images, "
                   "a page, a write image); more get 413")
    p.add_argument("--allow_origin", "--allow-origin", dest="allow_origins", action="append",
                   default=[], metavar="ORIGIN", help="a web origin (http://host:port) whose "
                   "pages may call this server (repeatable); other Origins get 403")
    p.add_argument("--allow_host", "--allow-host", dest="allow_hosts", action="append",
                   default=[], metavar="HOST", help="a Host name requests may use besides the "
                   "bound address and localhost (repeatable); others get 403")
    return p


def serve_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        server = make_server(args.model, args.host, args.port, model_name=args.model_name,
                             max_body_bytes=args.max_body_bytes,
                             max_text_chars=args.max_text_chars,
                             max_concurrent=args.max_concurrent,
                             max_glyphs=args.max_glyphs, max_pixels=args.max_pixels,
                             allow_origins=args.allow_origins, allow_hosts=args.allow_hosts)
    except (ValueError, FileNotFoundError, NotADirectoryError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    served = server.app.served
    print(f"serving model {served.name!r} version {served.version} ({served.model.path}) at "
          f"{server.url}/v1/models/{served.name}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))

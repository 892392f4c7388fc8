"""HTTP for `hwgan app`: a Starlette application served by uvicorn, bound to 127.0.0.1.

Who may ask (the `Guard` middleware, before any route): the Host and Origin rules of
`hwgan serve` (hw_gan.serve.check_caller: a Host that is not this server's is refused, DNS
rebinding; an Origin that is not this server's own is refused); every state-changing request
(POST) must also carry the header `X-Hwgan-App: 1`, which a page of another site cannot send
without the browser asking first (a CORS preflight this server never grants), and a JSON body,
or multipart form data on the two upload routes only; it must give a Content-Length within the
route's limit (413 names the limit; chunked bodies 411). Uploaded files are judged by their
content (data_pipeline.scan.read_gray reads the header and refuses non-images and images over
--max_megapixels before decoding them), stored under names this server makes, and counted
(--max_files a request) and measured (--max_upload_mb each). Every page asset comes from the
package (hw_gan/app/static): no CDN, the page works offline; a Content-Security-Policy of
'self' says so to the browser."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import cv2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hw_gan.app.jobs import Busy as JobBusy
from hw_gan.app.store import StoreError
from hw_gan.app.studio import Busy, Studio
from hw_gan.serve import LOCAL_HOSTS, HttpError, check_caller

STATIC = Path(__file__).resolve().parent / "static"
JSON_LIMIT = 256 << 10
UPLOAD_ROUTES = ("/api/uploads", "/api/hands/import")
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
     b"frame-ancestors 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware: who may ask, and how big a request may be (see the module doc)."""

    def __init__(self, app, limits: dict, allow_hosts: Sequence[str] = ()):
        self.app = app
        self.limits = limits
        self.allow_hosts = set(allow_hosts)
        self.bound: Optional[tuple] = None  # (host, port), set once bound

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secure(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        try:
            self.check(scope)
        except HttpError as e:
            response = JSONResponse({"error": e.message}, e.status, headers=e.headers or None)
            return await response(scope, receive, send_secure)
        return await self.app(scope, receive, send_secure)

    def check(self, scope) -> None:
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        host, port = self.bound or scope.get("server") or ("127.0.0.1", 0)
        hosts = set(LOCAL_HOSTS) | self.allow_hosts
        if host not in ("", "0.0.0.0", "::"):
            hosts.add(host.lower())
        upload = path in UPLOAD_ROUTES
        types = ("application/json", "multipart/form-data") if upload else ("application/json",)
        check_caller(method, headers.getlist("host"), headers.getlist("origin"),
                     headers.get("content-type"), (host, port), hosts, (), types)
        if method not in ("GET", "HEAD"):
            if headers.get("x-hwgan-app") != "1":
                raise HttpError(403, "changes are only taken from the app's own page")
            if headers.get("transfer-encoding") is not None:
                raise HttpError(411, "chunked bodies are not accepted: send a Content-Length")
            lengths = headers.getlist("content-length")
            if len(lengths) != 1 or not re.fullmatch(r"[0-9]{1,18}", lengths[0]):
                raise HttpError(411, "a request that changes something needs one Content-Length")
            limit = self.limits["upload_request"] if upload else JSON_LIMIT
            if int(lengths[0]) > limit:
                what = (f"{self.limits['max_files']} files of {self.limits['max_upload_mb']:g} MB "
                        "(--max_files, --max_upload_mb)" if upload else f"{limit} bytes")
                raise HttpError(413, f"the request is {int(lengths[0])} bytes, over this app's "
                                     f"limit of {what}")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def _json_body(request: Request):
    try:
        return json.loads((await request.body()).decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise StoreError("the request is not valid JSON") from None


def _display_name(upload: UploadFile) -> str:
    """An upload's file name, for showing only (never a path): printable, at most 100."""
    name = upload.filename or "(no name)"
    name = "".join(c for c in name if c.isprintable())[-100:]
    return name or "(no name)"


def build_app(studio: Studio, *, max_files: int = 12, max_upload_mb: float = 25.0,
              allow_hosts: Sequence[str] = ()) -> tuple[Starlette, Guard]:
    max_upload = int(max_upload_mb * (1 << 20))
    limits = {"max_files": max_files, "max_upload_mb": max_upload_mb,
              "upload_request": max_files * max_upload + (64 << 10)}

    async def call(fn, *args):
        """Runs blocking work in a thread; StoreError -> 400, Busy -> 503 / 409."""
        try:
            return await run_in_threadpool(fn, *args)
        except Busy as e:
            return _error(503, str(e))
        except JobBusy as e:
            return _error(409, str(e))
        except HttpError as e:
            return _error(e.status, e.message)
        except StoreError as e:
            return _error(400, str(e))

    async def index(request):
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def info(request):
        return JSONResponse(studio.info())

    async def sheets(request):
        body = await _json_body(request)
        out = await call(studio.sheets_pdf, body)
        if isinstance(out, Response):
            return out
        return Response(out, media_type="application/pdf",
                        headers={"Content-Disposition": 'attachment; filename="sheets.pdf"'})

    async def _files(request, field: str):
        """The uploaded files of `field`, or the error Response (counted, each measured)."""
        try:
            form = await request.form(max_files=max_files, max_fields=max_files + 4)
        except Exception as e:  # the multipart parser's own limits (too many files, ...)
            if "too many files" in str(e).lower():
                return _error(413, f"too many files: this app takes at most {max_files} at once "
                                   "(--max_files)")
            return _error(400, f"the upload could not be read: {e}")
        files = [f for f in form.getlist(field) if isinstance(f, UploadFile)]
        if not files:
            return _error(400, "choose at least one file")
        for f in files:
            if f.size is not None and f.size > max_upload:
                return _error(413, f"{_display_name(f)}: {f.size / 2**20:.1f} MB is over this "
                                   f"app's limit of {max_upload_mb:g} MB a file "
                                   "(--max_upload_mb)")
        return files

    async def uploads(request):
        files = await _files(request, "files")
        if isinstance(files, Response):
            return files
        results = []
        for f in files:
            with tempfile.NamedTemporaryFile(dir=studio.sheets.pages_dir, prefix=".up-",
                                             delete=False) as tmp:
                while chunk := await f.read(1 << 20):
                    tmp.write(chunk)
            out = await call(studio.upload, Path(tmp.name), _display_name(f))
            if isinstance(out, Response):
                Path(tmp.name).unlink(missing_ok=True)
                return out
            results.append(out)
        return JSONResponse({"results": results, "review": await call(studio.review)})

    async def review(request):
        return JSONResponse(await call(studio.review))

    async def glyph(request):
        gid = request.path_params["gid"]
        try:
            img = studio.sheets.glyph_image(gid)
        except StoreError as e:
            return _error(404, str(e))
        ok, png = cv2.imencode(".png", 255 - img)
        return Response(png.tobytes(), media_type="image/png")

    async def glyph_set(request):
        body = await _json_body(request)
        excluded = body.get("excluded")
        if not isinstance(excluded, bool):
            return _error(400, "excluded must be true or false")
        out = await call(studio.sheets.set_excluded, body.get("id"), excluded)
        if isinstance(out, Response):
            return out
        return JSONResponse(await call(studio.review))

    async def sheets_clear(request):
        await call(studio.sheets.clear)
        return JSONResponse(await call(studio.review))

    async def hands(request):
        return JSONResponse({"hands": studio.all_hands()})

    async def hands_make(request):
        body = await _json_body(request)
        method = body.get("method")
        if method == "fast":
            out = await call(studio.make_fast, body.get("name"))
            return out if isinstance(out, Response) else JSONResponse({"hand": out})
        if method == "better":
            out = await call(studio.start_better, body.get("name"))
            return out if isinstance(out, Response) else JSONResponse({"job": out})
        return _error(400, "method must be fast or better")

    async def hand_rename(request):
        body = await _json_body(request)
        out = await call(studio.hands.rename, request.path_params["hid"], body.get("name"))
        return out if isinstance(out, Response) else JSONResponse({"hand": out})

    async def hand_delete(request):
        out = await call(studio.hands.delete, request.path_params["hid"])
        return out if isinstance(out, Response) else JSONResponse({"deleted": True})

    async def hand_export(request):
        out = await call(studio.export_hand, request.path_params["hid"])
        if isinstance(out, Response):
            return out
        return Response(out, media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="hand.hwhand"'})

    async def hand_import(request):
        files = await _files(request, "file")
        if isinstance(files, Response):
            return files
        data = await files[0].read()
        out = await call(studio.import_hand, data)
        return out if isinstance(out, Response) else JSONResponse({"hand": out})

    async def job(request):
        return JSONResponse({"job": studio.jobs.latest()})

    async def job_cancel(request):
        out = await call(studio.jobs.cancel, request.path_params["jid"])
        return out if isinstance(out, Response) else JSONResponse({"job": out})

    async def write(request):
        body = await _json_body(request)
        out = await call(studio.write, body)
        if isinstance(out, Response):
            return out
        data, ctype, headers = out
        return Response(data, media_type=ctype, headers=headers)

    async def handle_store_error(request, exc):
        return _error(400, str(exc))

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/sheets", sheets, methods=["POST"]),
        Route("/api/sheets/clear", sheets_clear, methods=["POST"]),
        Route("/api/uploads", uploads, methods=["POST"]),
        Route("/api/review", review),
        Route("/api/glyphs/{gid}.png", glyph),
        Route("/api/glyphs", glyph_set, methods=["POST"]),
        Route("/api/hands", hands),
        Route("/api/hands/make", hands_make, methods=["POST"]),
        Route("/api/hands/import", hand_import, methods=["POST"]),
        Route("/api/hands/{hid}/rename", hand_rename, methods=["POST"]),
        Route("/api/hands/{hid}/delete", hand_delete, methods=["POST"]),
        Route("/api/hands/{hid}/export", hand_export),
        Route("/api/job", job),
        Route("/api/job/{jid}/cancel", job_cancel, methods=["POST"]),
        Route("/api/write", write, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={StoreError: handle_store_error})
    guard = Guard(app, limits, allow_hosts)
    return app, guard


def make_server(studio: Studio, host: str, port: int, **kw):
    """(uvicorn.Server, its bound socket, the page's URL) for (host, port) (0: a free port);
    kw: build_app's limits. `serve` runs it; tests run it in a thread."""
    import uvicorn

    _, guard = build_app(studio, **kw)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    guard.bound = (host, sock.getsockname()[1])
    config = uvicorn.Config(guard, log_level="warning", access_log=False,
                            limit_concurrency=64, timeout_keep_alive=30)
    url_host = f"[{host}]" if ":" in host else host
    return uvicorn.Server(config), sock, f"http://{url_host}:{guard.bound[1]}"


def serve(studio: Studio, host: str, port: int, *, ready=None, **kw) -> None:
    """Binds (host, port) (0: a free port) and serves until interrupted; ready(url) is called
    once listening."""
    server, sock, url = make_server(studio, host, port, **kw)
    if ready is not None:
        ready(url)
    asyncio.run(server.serve(sockets=[sock]))

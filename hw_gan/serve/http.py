"""HTTP for `hwgan serve`: the App (routing, limits, the request log), the request handler,
ModelHTTPServer and make_server. Requests are answered by hw_gan.serve.rest (status, metadata,
:predict) and hw_gan.serve.write (:write)."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, TextIO

from hw_gan.serve.rest import HttpError, ServedModel, bad_request, encode_json, predict
from hw_gan.serve.write import write_response

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TEXT_CHARS = 5000
DEFAULT_MAX_CONCURRENT = 4
DRAIN_LIMIT = 16 << 20  # bytes of a refused body read (and dropped) before answering
REQUEST_TIMEOUT_S = 60  # socket timeout of a connection (a stalled client frees its thread)

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                   r"(?:(?P<meta>/metadata)|:(?P<verb>[A-Za-z]+))?/?$")


# ------------------------------------------------------------------------------------------------
# Request handling (independent of HTTP, so it can be tested and reused).


class App:
    """The served model and this server's limits: routes a request (`route`), answers :predict
    and :write, and writes the request log (one line each)."""

    def __init__(self, served: ServedModel, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, log: Optional[TextIO] = None):
        if max_body_bytes < 1 or max_text_chars < 1 or max_concurrent < 1:
            raise ValueError("max_body_bytes, max_text_chars and max_concurrent must be >= 1")
        self.served = served
        self.max_body_bytes = int(max_body_bytes)
        self.max_text_chars = int(max_text_chars)
        self.max_concurrent = int(max_concurrent)
        # Held while a predict/write request runs; a request that finds none free gets 503.
        self.semaphore = threading.BoundedSemaphore(self.max_concurrent)
        self.log = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()

    def route(self, method: str, raw_path: str):
        """-> kind (status, metadata, predict or write), or raises HttpError (404, 405)."""
        path = raw_path.split("?", 1)[0]
        m = _PATH.match(path)
        if not m:
            raise HttpError(404, f"no such endpoint: {path}; see /v1/models/{self.served.name}")
        name, version = m.group("name"), m.group("version")
        if name != self.served.name:
            raise HttpError(404, f"Servable not found for request: Latest({name}); this server "
                                 f"serves model {self.served.name!r}")
        if version is not None and version != self.served.version:
            raise HttpError(404, f"Servable not found for request: Specific({name}, {version}); "
                                 f"served version: {self.served.version}")
        if m.group("meta"):
            kind, allowed = "metadata", "GET"
        elif m.group("verb"):
            kind, allowed = m.group("verb"), "POST"
            if kind not in ("predict", "write"):
                raise HttpError(404, f"unknown verb :{kind}; this server answers :predict and "
                                     ":write (not :classify / :regress)")
        else:
            kind, allowed = "status", "GET"
        if method != allowed:
            raise HttpError(405, f"{method} is not allowed on {path}: use {allowed}",
                            {"Allow": allowed})
        return kind

    def predict(self, body: Any) -> dict:
        return predict(self.served, body)

    def write(self, body: Any) -> tuple[bytes, str, dict]:
        return write_response(self.served, body, self.max_text_chars)

    def log_line(self, line: str) -> None:
        with self._log_lock:
            try:
                self.log.write(line + "\n")
                self.log.flush()
            except (OSError, ValueError):
                pass


# ------------------------------------------------------------------------------------------------
# HTTP.


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hwgan-serve"
    timeout = REQUEST_TIMEOUT_S

    @property
    def app(self) -> App:
        return self.server.app  # type: ignore[attr-defined]

    def log_request(self, code="-", size="-") -> None:  # one line per request is logged by _handle
        pass

    def log_message(self, format, *args) -> None:  # protocol errors (bad request line, ...)
        self.app.log_line(f"{self.address_string()} {format % args}")

    def _send(self, status: int, body: bytes, content_type: str,
              headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status, self._size = status, len(body)

    def _send_json(self, status: int, obj: Any, headers: Optional[dict] = None) -> None:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=True).encode("utf-8")
        self._send(status, body, "application/json", headers)

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own errors (bad request line, header too long, ...) as JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        body = json.dumps({"error": message or phrase}).encode("utf-8")
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _drain(self, n: int) -> None:
        """Reads and drops up to DRAIN_LIMIT bytes of an unwanted body."""
        left = min(n, DRAIN_LIMIT)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _read_json(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "chunked bodies are not accepted: send a Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise HttpError(411, "a POST needs a Content-Length")
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise bad_request(f"bad Content-Length {length!r}") from None
        if n > self.app.max_body_bytes:
            # Read (a bounded amount of) the body first, so that the client sees the 413 and not a
            # connection reset; the connection is closed after it.
            self._drain(n)
            self.close_connection = True
            raise HttpError(413, f"request body of {n} bytes is over this server's limit of "
                                 f"{self.app.max_body_bytes} (--max_body_bytes)")
        raw = self.rfile.read(n)
        if len(raw) != n:
            self.close_connection = True
            raise bad_request("the request body ended early")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise bad_request(f"the body is not valid JSON: {e}") from None

    def _handle(self) -> None:
        start = time.perf_counter()
        self._status, self._size = 0, 0
        try:
            kind = self.app.route(self.command, self.path)
            if kind == "status":
                self._send_json(200, self.app.served.status_json())
            elif kind == "metadata":
                self._send_json(200, self.app.served.metadata_json())
            else:
                body = self._read_json()
                if not self.app.semaphore.acquire(blocking=False):
                    raise HttpError(503, f"the server is busy: {self.app.max_concurrent} "
                                         "requests are running (--max_concurrent); retry later",
                                    {"Retry-After": "1"})
                try:  # the limit covers the work, not the sending of the answer
                    if kind == "predict":
                        reply = (encode_json(self.app.predict(body)).encode("utf-8"),
                                 "application/json", {})
                    else:
                        reply = self.app.write(body)
                finally:
                    self.app.semaphore.release()
                self._send(200, *reply)
        except HttpError as e:
            if e.status in (404, 405) and self.headers.get("Content-Length") not in (None, "0"):
                try:  # an unread body would be taken for the next request
                    self._drain(int(self.headers.get("Content-Length")))
                except ValueError:
                    pass
                self.close_connection = True
            self._send_json(e.status, {"error": e.message}, e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a server answers 500 and keeps running
            self.close_connection = True
            try:
                self._send_json(500, {"error": f"internal error: {type(e).__name__}: {e}"})
            except OSError:
                pass
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.app.log_line(f"{self.client_address[0]} {self.command} "
                              f"{self.path[:200]!s} {self._status} {self._size}B {ms:.1f}ms")

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_HEAD = _handle
    do_OPTIONS = _handle


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, app: App):
        self.app = app
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


class _ModelHTTPServerV6(ModelHTTPServer):
    address_family = socket.AF_INET6


def make_server(model_path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                model_name: Optional[str] = None,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                max_concurrent: int = DEFAULT_MAX_CONCURRENT,
                log: Optional[TextIO] = None, warmup: bool = True) -> ModelHTTPServer:
    """Loads the export and binds (host, port) (port 0: any free port; see `.port`, `.url`).
    Run it with `serve_forever()` (e.g. in a thread); stop with `shutdown()` then
    `server_close()`. `.app.semaphore` is the concurrency limit."""
    served = ServedModel(model_path, model_name=model_name, warmup=warmup)
    app = App(served, max_body_bytes, max_text_chars, max_concurrent, log)
    if ":" in host:
        return _ModelHTTPServerV6((host, port), app)
    return ModelHTTPServer((host, port), app)


"""HTTP for `hwgan serve`: the App (routing, limits, who may ask, the request log), the request
handler, ModelHTTPServer and make_server. Requests are answered by hw_gan.serve.rest (status,
metadata, :predict) and hw_gan.serve.write (:write).

Who may ask (`App.check_caller`, before anything else): a `Host` that names the bound address,
localhost or an --allow_host name (a DNS-rebinding page names its own host: 403); an `Origin`, when
there is one, that is this server's own (http://HOST:PORT for those hosts) or an --allow_origin
one (a cross-site page: 403; TF Serving clients send none); and `Content-Type: application/json`
on a POST (415: a cross-site form or text/plain post, which browsers send without asking).

Framing: exactly one Content-Length of digits (two, even equal ones, or "+12", "12 ", "0x1"
give 400), no Transfer-Encoding (411); after any error whose body was not read the connection is
closed (a bounded drain first, so the client sees the answer): leftover bytes are never parsed
as a next request. HEAD is answered wherever GET is."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Sequence, TextIO

from hw_gan.serve.rest import (Budget, HttpError, ServedModel, bad_request, encode_json,
                               predict)
from hw_gan.serve.write import write_response

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TEXT_CHARS = 5000
DEFAULT_MAX_CONCURRENT = 4
DEFAULT_MAX_GLYPHS = 5000
DEFAULT_MAX_PIXELS = 1 << 24  # 16.8 M: an A4 page at 400 dpi; the write signature's own cap
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
DRAIN_LIMIT = 16 << 20  # bytes of a refused body read (and dropped) before answering
REQUEST_TIMEOUT_S = 60  # socket timeout of a connection (a stalled client frees its thread)

_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                   r"(?:(?P<meta>/metadata)|:(?P<verb>[A-Za-z]+))?/?$")


# ------------------------------------------------------------------------------------------------
# Request handling (independent of HTTP, so it can be tested and reused).


class App:
    """The served model and this server's limits: checks who asks (`check_caller`), routes a
    request (`route`), answers :predict and :write within the budget, and writes the request log
    (one line each)."""

    def __init__(self, served: ServedModel, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, log: Optional[TextIO] = None, *,
                 max_glyphs: int = DEFAULT_MAX_GLYPHS, max_pixels: int = DEFAULT_MAX_PIXELS,
                 allow_origins: Sequence[str] = (), allow_hosts: Sequence[str] = ()):
        if max_body_bytes < 1 or max_text_chars < 1 or max_concurrent < 1:
            raise ValueError("max_body_bytes, max_text_chars and max_concurrent must be >= 1")
        self.served = served
        self.max_body_bytes = int(max_body_bytes)
        self.max_text_chars = int(max_text_chars)
        self.max_concurrent = int(max_concurrent)
        self.budget = Budget(max_text_chars=self.max_text_chars, max_glyphs=max_glyphs,
                             max_pixels=max_pixels)
        self.allow_origins = {_origin_key(o, "--allow_origin") for o in allow_origins}
        self.allow_hosts = {_host_key(h, "--allow_host") for h in allow_hosts}
        # Held while a predict/write request runs; a request that finds none free gets 503.
        self.semaphore = threading.BoundedSemaphore(self.max_concurrent)
        self.log = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()

    def hosts(self, bound_host: str) -> set:
        """Host names a request may name: localhost, the bound address, --allow_host."""
        hosts = set(LOCAL_HOSTS) | self.allow_hosts
        if bound_host not in ("", "0.0.0.0", "::"):
            hosts.add(bound_host.lower())
        return hosts

    def check_caller(self, method: str, headers, bound: tuple) -> None:
        """403 for a Host that is not this server's (DNS rebinding) or a foreign Origin; 415 for
        a POST that is not `Content-Type: application/json`. bound: (host, port) bound."""
        check_caller(method, headers.get_all("Host") or [], headers.get_all("Origin") or [],
                     headers.get("Content-Type"), bound, self.hosts(bound[0]),
                     self.allow_origins)

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
        if allowed == "GET":
            allowed = "GET, HEAD"
        if method not in allowed.split(", "):
            raise HttpError(405, f"{method} is not allowed on {path}: use {allowed}",
                            {"Allow": allowed})
        return kind

    def predict(self, body: Any) -> dict:
        return predict(self.served, body, self.budget)

    def write(self, body: Any) -> tuple[bytes, str, dict]:
        return write_response(self.served, body, self.budget)

    def log_line(self, line: str) -> None:
        with self._log_lock:
            try:
                self.log.write(line + "\n")
                self.log.flush()
            except (OSError, ValueError):
                pass


def check_caller(method: str, host_values: Sequence[str], origin_values: Sequence[str],
                 content_type: Optional[str], bound: tuple, hosts: set, allow_origins=(),
                 content_types: Sequence[str] = ("application/json",)) -> None:
    """Who may ask, for `hwgan serve` and `hwgan app`: 403 for a Host header not in `hosts`
    (DNS rebinding) or an Origin that is neither this server's own (http://HOST:PORT for those
    hosts, `bound` = (host, port)) nor in `allow_origins`; 415 for a state-changing request
    whose Content-Type is not one of `content_types`; 400 for more than one Host."""
    if len(host_values) > 1:
        raise bad_request("more than one Host header")
    if host_values:
        name = _host_of(host_values[0])
        if name not in hosts:
            raise HttpError(403, f"Host {host_values[0][:100]!r} is not this server's "
                                 f"(it answers {sorted(hosts)}; add names with "
                                 "--allow_host)")
    if origin_values:
        own = {f"http://{h if ':' not in h else '[' + h + ']'}:{bound[1]}" for h in hosts}
        if bound[1] == 80:
            own |= {f"http://{h if ':' not in h else '[' + h + ']'}" for h in hosts}
        if len(origin_values) > 1 or origin_values[0].strip().lower().rstrip("/") not in (
                own | set(allow_origins)):
            raise HttpError(403, f"Origin {origin_values[0][:100]!r} may not use this server "
                                 "(only its own pages, or --allow_origin ones)")
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        if ctype not in content_types:
            raise HttpError(415, f"Content-Type must be {' or '.join(content_types)}, got "
                                 f"{(content_type or '(none)')[:100]!r}")


def _host_of(value: str) -> str:
    """The host name of a Host header ("name", "name:port", "[v6]:port"), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _host_key(value: str, flag: str) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value:
        raise ValueError(f"{flag} takes a host name or address, got {value!r}")
    return _host_of(value)


def _origin_key(value: str, flag: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+/?$", value.strip(), re.I):
        raise ValueError(f"{flag} takes an origin like http://example.com:8080, got {value!r}")
    return value.strip().lower().rstrip("/")


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
        """http.server's own errors (bad request line, header too long, ...) as JSON too, and
        as 4xx: a method it has no handler for is 405 (not 501), an HTTP version it does not
        speak 400 (not 505)."""
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = 405, f"method {str(self.command)[:20]!r} is not allowed"
        elif code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code, message = 400, f"{message}: use HTTP/1.1"
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

    def handle(self) -> None:
        """A client that resets or drops its connection is one log line, not a traceback."""
        try:
            super().handle()
        except (ConnectionError, TimeoutError) as e:
            self.close_connection = True
            self.app.log_line(f"{self.client_address[0]} connection dropped by the client "
                              f"({type(e).__name__})")

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

    def _body_length(self) -> Optional[int]:
        """The body's length from the one Content-Length header (None without one); 400 for
        duplicates or anything but digits, 411 for Transfer-Encoding. Either error leaves the
        body's end unknown: the connection will close."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise HttpError(411, "chunked bodies are not accepted: send a Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if len(values) > 1:
            raise bad_request(f"{len(values)} Content-Length headers: send exactly one")
        if not values:
            return None
        if not _CONTENT_LENGTH.fullmatch(values[0]):
            raise bad_request(f"bad Content-Length {values[0][:40]!r}: digits only")
        return int(values[0])

    def _discard_body(self) -> None:
        """Before an answer that leaves the body unread: drain it (bounded) if its length is
        known, and close the connection after the answer either way."""
        self.close_connection = True
        if self._length:
            self._drain(self._length)
        self._body_done = True

    def _read_json(self):
        n = self._length
        if n is None:
            raise HttpError(411, "a POST needs a Content-Length")
        if n > self.app.max_body_bytes:
            # Read (a bounded amount of) the body first, so that the client sees the 413 and not a
            # connection reset; the connection is closed after it.
            raise HttpError(413, f"request body of {n} bytes is over this server's limit of "
                                 f"{self.app.max_body_bytes} (--max_body_bytes)")
        raw = self.rfile.read(n)
        if len(raw) != n:
            self.close_connection = True
            raise bad_request("the request body ended early")
        self._body_done = True
        try:
            return json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise bad_request("the body is nested too deeply") from None
        except (UnicodeDecodeError, ValueError) as e:
            raise bad_request(f"the body is not valid JSON: {e}") from None

    def _handle(self) -> None:
        start = time.perf_counter()
        self._status, self._size = 0, 0
        self._length, self._body_done = None, False
        try:
            try:
                self._length = self._body_length()
            except HttpError:
                self._body_done = True  # its end is unknown: nothing to drain, close
                self.close_connection = True
                raise
            self._body_done = not self._length
            self.app.check_caller(self.command, self.headers, self.server.server_address[:2])
            kind = self.app.route(self.command, self.path)
            if kind in ("status", "metadata"):
                if not self._body_done:
                    self._discard_body()
                self._send_json(200, self.app.served.status_json() if kind == "status"
                                else self.app.served.metadata_json())
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
                except RecursionError:
                    raise bad_request("the body is nested too deeply") from None
                finally:
                    self.app.semaphore.release()
                self._send(200, *reply)
        except HttpError as e:
            if not self._body_done:  # an unread body would be taken for the next request
                self._discard_body()
            self._send_json(e.status, {"error": e.message}, e.headers)
        except (ConnectionError, TimeoutError) as e:
            self.close_connection = True
            self._status = f"- connection dropped by the client ({type(e).__name__})"
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

    def handle_error(self, request, client_address) -> None:
        """One log line, not socketserver's traceback (e.g. a reset while the answer flushes)."""
        e = sys.exc_info()[1]
        self.app.log_line(f"{client_address[0]} connection error ({type(e).__name__}: "
                          f"{str(e)[:200]})")

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
                max_glyphs: int = DEFAULT_MAX_GLYPHS, max_pixels: int = DEFAULT_MAX_PIXELS,
                allow_origins: Sequence[str] = (), allow_hosts: Sequence[str] = (),
                log: Optional[TextIO] = None, warmup: bool = True) -> ModelHTTPServer:
    """Loads the export and binds (host, port) (port 0: any free port; see `.port`, `.url`).
    Run it with `serve_forever()` (e.g. in a thread); stop with `shutdown()` then
    `server_close()`. `.app.semaphore` is the concurrency limit, `.app.budget` the per-request
    budget. ValueError for a bad limit, origin or host (before the export is loaded)."""
    Budget(max_text_chars=max_text_chars, max_glyphs=max_glyphs, max_pixels=max_pixels)
    for o in allow_origins:
        _origin_key(o, "--allow_origin")
    for h in allow_hosts:
        _host_key(h, "--allow_host")
    served = ServedModel(model_path, model_name=model_name, warmup=warmup)
    app = App(served, max_body_bytes, max_text_chars, max_concurrent, log, max_glyphs=max_glyphs,
              max_pixels=max_pixels, allow_origins=allow_origins, allow_hosts=allow_hosts)
    if ":" in host:
        return _ModelHTTPServerV6((host, port), app)
    return ModelHTTPServer((host, port), app)

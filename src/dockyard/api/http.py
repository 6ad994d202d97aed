"""A small threaded HTTP/1.1 server for the Engine API.

Why not an ASGI framework: attach and exec hijack the connection (101 UPGRADED, then a raw
bidirectional byte stream), which ASGI servers cannot hand over. A thread per connection keeps
streaming endpoints (logs -f, wait, events, attach) simple blocking code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("dockyard.api")

REASONS = {101: "UPGRADED"}


class ChunkedReader:
    """File-like reader that decodes a `Transfer-Encoding: chunked` request body."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._left = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self._done and (n < 0 or len(out) < n):
            if self._left == 0:
                line = self._raw.readline(1024)
                if not line:
                    raise ConnectionError("truncated chunked body")
                self._left = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if self._left == 0:
                    while self._raw.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    self._done = True
                    break
            want = self._left if n < 0 else min(self._left, n - len(out))
            data = self._raw.read(want)
            if not data:
                raise ConnectionError("truncated chunked body")
            out += data
            self._left -= len(data)
            if self._left == 0:
                self._raw.readline(8)
        return bytes(out)

    def drain(self) -> None:
        while self.read(65536):
            pass


class LimitedReader:
    """File-like reader over exactly Content-Length bytes."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        self._raw = raw
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = self._raw.read(n)
        self._left -= len(data)
        if not data:
            self._left = 0
        return data

    def drain(self) -> None:
        while self.read(65536):
            pass


@dataclass
class Request:
    """What a route handler sees of one HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: ChunkedReader | LimitedReader
    api_version: str
    params: dict[str, str] = field(default_factory=dict)
    _handler: Any = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's boolean query values: 1/true/True are true, 0/false/"" false."""
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "false", "no")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            from dockyard.errors import InvalidParameter

            raise InvalidParameter(f"invalid value for {name}: {value!r}") from None

    def json(self, default: Any = None) -> Any:
        raw = self.body.read()
        if not raw.strip():
            return default
        try:
            return json.loads(raw)
        except ValueError as exc:
            from dockyard.errors import InvalidParameter

            raise InvalidParameter(f"invalid JSON: {exc}") from None

    def json_arg(self, name: str, what: str | None = None) -> dict[str, Any]:
        """A query parameter holding a JSON object (filters, buildargs, labels); {} when absent."""
        from dockyard.errors import InvalidParameter

        raw = self.arg(name)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidParameter(f"invalid {what or name}: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidParameter(f"invalid {what or name}: a JSON object is expected")
        return data

    def json_filters(self) -> dict[str, list[str]]:
        """Docker's `filters` query: JSON map of name → list (or legacy name → {value: true})."""
        data = self.json_arg("filters", "filter")
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            out[key] = list(value.keys()) if isinstance(value, dict) else list(value)
        return out

    def hijack(self, content_type: str) -> socket.socket:
        """Switch the connection to a raw stream (docker's attach/exec protocol)."""
        return self._handler.hijack(content_type)

    def websocket(self) -> WebSocketStream:
        """Accept a WebSocket upgrade (attach/ws); the stream speaks in binary messages."""
        return self._handler.websocket()

    @property
    def api_at_least(self) -> Callable[[str], bool]:
        return lambda v: _version_tuple(self.api_version) >= _version_tuple(v)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A chunked response; headers are flushed before the first chunk is produced."""

    chunks: Iterable[bytes]
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


HIJACKED = object()


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj).encode() + b"\n")


Dispatcher = Callable[[Request], "Response | StreamResponse | object"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dockyard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def address_string(self) -> str:
        return (
            "unix"
            if isinstance(self.client_address, str | bytes) or not self.client_address
            else str(self.client_address[0])
        )

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._serve()
            self.wfile.flush()
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def _serve(self) -> None:
        self._hijacked = False
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body: ChunkedReader | LimitedReader = ChunkedReader(self.rfile)
        else:
            body = LimitedReader(self.rfile, int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            api_version="",
            _handler=self,
        )
        result = self.server.dispatch(request)  # type: ignore[attr-defined]
        if result is HIJACKED:
            self.close_connection = True
            return
        try:
            body.drain()
        except (ConnectionError, ValueError):
            self.close_connection = True
        if isinstance(result, StreamResponse):
            self._send_stream(result)
        else:
            assert isinstance(result, Response)
            self._send(result)

    def _common_headers(self, extra: dict[str, str]) -> None:
        for key, value in self.server.common_headers.items():  # type: ignore[attr-defined]
            self.send_header(key, value)
        for key, value in extra.items():
            self.send_header(key, value)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status, REASONS.get(resp.status))
        self._common_headers(resp.headers)
        if resp.status not in (204, 304):
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if resp.status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(resp.body)

    def _send_stream(self, resp: StreamResponse) -> None:
        self.send_response(resp.status)
        self._common_headers(resp.headers)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        chunks: Iterator[bytes] = iter(resp.chunks)
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception:
            # Headers are gone already: all we can do is log and end the connection mid-stream,
            # which the client reports as a truncated response.
            log.exception("stream for %s %s failed", self.command, self.path)
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    def hijack(self, content_type: str) -> socket.socket:
        upgrade = "upgrade" in self.headers.get("Connection", "").lower()
        if upgrade:
            lines = ["HTTP/1.1 101 UPGRADED", f"Content-Type: {content_type}", "Connection: Upgrade", "Upgrade: tcp"]
        else:
            lines = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
        lines += [f"{k}: {v}" for k, v in self.server.common_headers.items()]  # type: ignore[attr-defined]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.wfile.flush()
        self._hijacked = True
        return HijackedSocket(self.connection, self.rfile)

    def websocket(self) -> WebSocketStream:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection
        from wsproto.events import Request as WsRequest

        ws = WSConnection(ConnectionType.SERVER)
        head = self.requestline + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n"
        ws.receive_data(head.encode("latin-1"))
        if not any(isinstance(event, WsRequest) for event in ws.events()):
            from dockyard.errors import InvalidParameter

            raise InvalidParameter("a WebSocket upgrade request is expected")
        self.wfile.write(ws.send(AcceptConnection()))
        self.wfile.flush()
        self._hijacked = True
        return WebSocketStream(self.connection, self.rfile, ws)


class WebSocketStream:
    """A hijacked connection spoken as WebSocket (wsproto does the framing): sendall() sends one
    binary message, recv() returns the payload of what the client sends (b"" once it closes)."""

    def __init__(self, sock: socket.socket, rfile: BinaryIO, ws: Any) -> None:
        self.sock = sock
        self._rfile = rfile
        self._ws = ws
        self._lock = threading.Lock()  # one writer at a time: output and pong/close replies interleave

    def _write(self, event: Any) -> None:
        with self._lock:
            self.sock.sendall(self._ws.send(event))

    def sendall(self, data: bytes) -> None:
        from wsproto.events import BytesMessage

        self._write(BytesMessage(data=data))

    def recv(self, n: int) -> bytes:
        from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

        while True:
            chunk = self._rfile.read1(n)  # type: ignore[attr-defined]
            self._ws.receive_data(chunk or None)
            payload = b""
            for event in self._ws.events():
                if isinstance(event, BytesMessage):
                    payload += bytes(event.data)
                elif isinstance(event, TextMessage):
                    payload += event.data.encode()
                elif isinstance(event, Ping):
                    self._write(event.response())
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(Exception):
                        self._write(event.response())
                    return b""
            if payload or not chunk:
                return payload

    def shutdown_write(self) -> None:
        from wsproto.events import CloseConnection

        with contextlib.suppress(Exception):
            self._write(CloseConnection(code=1000))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class HijackedSocket:
    """The client connection after the upgrade; reads first drain what the HTTP parser buffered."""

    def __init__(self, sock: socket.socket, rfile: BinaryIO) -> None:
        self.sock = sock
        self._rfile = rfile

    def recv(self, n: int) -> bytes:
        return self._rfile.read1(n)  # type: ignore[attr-defined]

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def fileno(self) -> int:
        return self.sock.fileno()


class _ServerMixin:
    daemon_threads = True
    allow_reuse_address = True
    dispatch: Dispatcher
    common_headers: dict[str, str]


class UnixAPIServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Engine API over a unix socket (mode 0660: root and the socket's group only)."""

    def __init__(self, path: str, dispatch: Dispatcher, common_headers: dict[str, str]) -> None:
        self.dispatch = dispatch
        self.common_headers = common_headers
        if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or ".", mode=0o711, exist_ok=True)
        old = os.umask(0o117)
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o660)

    def get_request(self) -> tuple[socket.socket, str]:
        sock, _ = self.socket.accept()
        return sock, "unix"


class TCPAPIServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Engine API over TCP (unauthenticated, as docker's -H tcp:// without TLS: loopback use only)."""

    def __init__(self, addr: tuple[str, int], dispatch: Dispatcher, common_headers: dict[str, str]) -> None:
        self.dispatch = dispatch
        self.common_headers = common_headers
        super().__init__(addr, _Handler)

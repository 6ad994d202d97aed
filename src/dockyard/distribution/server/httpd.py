"""A lean threaded HTTP/1.1 server for the registry: keep-alive, streamed bodies, sendfile for blobs.

Why not api/http.py's BaseHTTPRequestHandler: the registry's hot paths (manifest GETs, blob GETs
under many concurrent clients) want one recv and one send per small request and zero-copy for
blobs; BaseHTTPRequestHandler parses headers with the email package and writes through buffered
files. One thread per connection keeps uploads and downloads plain blocking code; blocking
sockets with SO_RCVTIMEO/SO_SNDTIMEO give idle and stall timeouts without Python-level polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

log = logging.getLogger("dockyard.registry.http")

MAX_HEADER = 64 << 10
RECV = 256 << 10
DRAIN_LIMIT = 1 << 20  # unread request bodies larger than this close the connection instead
SENDFILE_CHUNK = 8 << 20

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}


class BadRequest(Exception):
    """The peer spoke malformed HTTP: answer 400 and close."""


@dataclass
class Response:
    """A response: `body` bytes, or `file` (an open binary file) with `offset`/`length` sent by sendfile."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: object | None = None
    offset: int = 0
    length: int | None = None  # None: len(body)


class _Connection:
    """One client socket and its read buffer, shared by the header parser and body readers."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def fill(self) -> bool:
        data = self.sock.recv(RECV)
        if not data:
            return False
        self.buf += data
        return True

    def read_line(self) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > MAX_HEADER or not self.fill():
                raise ConnectionError("truncated request body")

    def read_some(self, n: int) -> bytes:
        if not self.buf and not self.fill():
            return b""
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


class Body:
    """The request body as a file-like reader (Content-Length or chunked)."""

    def __init__(self, conn: _Connection, length: int | None, chunked: bool) -> None:
        self._conn = conn
        self.length = length
        self._chunked = chunked
        self._left = 0 if chunked else (length or 0)
        self._done = not chunked and not length

    @property
    def remaining(self) -> int | None:
        """Bytes still unread, None when unknown (chunked)."""
        return None if self._chunked and not self._done else self._left

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            out = bytearray()
            while chunk := self.read(1 << 20):
                out += chunk
            return bytes(out)
        if self._done:
            return b""
        if self._chunked and self._left == 0:
            size_line = self._conn.read_line()
            try:
                self._left = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if self._left == 0:
                while self._conn.read_line() not in (b"\r\n", b"\n"):
                    pass
                self._done = True
                return b""
        data = self._conn.read_some(min(n, self._left))
        if not data:
            raise ConnectionError("truncated request body")
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                self._conn.read_line()
            else:
                self._done = True
        return data

    def drain(self) -> bool:
        """Skip what the handler did not read; False when too much is left to be worth it."""
        remaining = self.remaining
        if remaining is not None and remaining > DRAIN_LIMIT:
            return False
        read = 0
        while chunk := self.read(65536):
            read += len(chunk)
            if read > DRAIN_LIMIT:
                return False
        return True


class Request:
    """One parsed request: method, raw path (never percent-decoded), query, lower-case headers, body."""

    __slots__ = ("_query", "body", "headers", "method", "path", "query_string", "remote")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: Body, remote: str) -> None:
        self.method = method
        self.path, _, self.query_string = target.partition("?")
        self.headers = headers
        self.body = body
        self.remote = remote
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        return self._query

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name) if self.query_string else None
        return values[-1] if values else default


Handler = Callable[[Request], Response]


class HTTPServer:
    """Threaded HTTP/1.1 server on a TCP address, optionally TLS."""

    def __init__(
        self,
        addr: tuple[str, int],
        handler: Handler,
        ssl_context: ssl.SSLContext | None = None,
        common_headers: dict[str, str] | None = None,
        idle_timeout: float = 120.0,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self._common = "".join(f"{k}: {v}\r\n" for k, v in (common_headers or {}).items())
        self.socket = socket.create_server(addr, backlog=1024, reuse_port=False)
        self.server_address = self.socket.getsockname()[:2]
        self._closing = False
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def serve_forever(self) -> None:
        while not self._closing:
            try:
                sock, peer = self.socket.accept()
            except OSError:
                if self._closing:
                    return
                continue
            thread = threading.Thread(
                target=self._serve_connection, args=(sock, peer), daemon=True, name=f"registry-conn-{peer[1]}"
            )
            thread.start()

    def shutdown(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closing = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _serve_connection(self, sock: socket.socket, peer: tuple) -> None:
        with self._lock:
            self._conns.add(sock)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            timeout = struct.pack("ll", int(self.idle_timeout), 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
            if self.ssl_context is not None:
                sock.settimeout(30)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            self._serve_requests(_Connection(sock), peer[0])
        except (OSError, ConnectionError, ssl.SSLError):
            pass
        except Exception:
            log.exception("connection from %s failed", peer)
        finally:
            with self._lock:
                self._conns.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _serve_requests(self, conn: _Connection, remote: str) -> None:
        while True:
            end = conn.buf.find(b"\r\n\r\n")
            while end < 0:
                if conn.buf and not conn.buf[:1].isupper():
                    # Not HTTP (a TLS ClientHello: clients of "insecure" registries try HTTPS first):
                    # answer at once so they fall back to plain HTTP instead of waiting for a timeout.
                    self._send_error(conn.sock, 400)
                    return
                if len(conn.buf) > MAX_HEADER:
                    self._send_error(conn.sock, 431)
                    return
                start = max(0, len(conn.buf) - 3)
                if not conn.fill():
                    return
                end = conn.buf.find(b"\r\n\r\n", start)
            head = bytes(conn.buf[:end])
            del conn.buf[: end + 4]
            try:
                request, keep_alive = self._parse(conn, head, remote)
            except BadRequest:
                self._send_error(conn.sock, 400)
                return
            if request.headers.get("expect", "").lower() == "100-continue":
                conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                response = self.handler(request)
            except (ConnectionError, BadRequest, TimeoutError, BlockingIOError):
                return
            try:
                if not request.body.drain():
                    keep_alive = False
            except (ConnectionError, BadRequest, OSError):
                keep_alive = False
            self._send(conn.sock, request.method, response, keep_alive)
            if not keep_alive:
                return

    @staticmethod
    def _parse(conn: _Connection, head: bytes, remote: str) -> tuple[Request, bool]:
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise BadRequest(lines[0]) from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(line)
            headers[name.strip().lower()] = value.strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = None
        if not chunked and "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise BadRequest("bad Content-Length") from None
            if length < 0:
                raise BadRequest("bad Content-Length")
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        return Request(method, target, headers, Body(conn, length, chunked), remote), keep_alive

    def _send(self, sock: socket.socket, method: str, resp: Response, keep_alive: bool) -> None:
        length = len(resp.body) if resp.length is None else resp.length
        head = [_STATUS_LINES.get(resp.status) or f"HTTP/1.1 {resp.status} Unknown\r\n".encode(), self._common.encode()]
        head.append("".join(f"{k}: {v}\r\n" for k, v in resp.headers.items()).encode("latin-1"))
        if resp.status != 204 and resp.status >= 200:
            head.append(b"Content-Length: %d\r\n" % length)
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if method == "HEAD" or resp.status == 204:
            if resp.file is not None:
                resp.file.close()  # type: ignore[attr-defined]
            sock.sendall(b"".join(head))
            return
        if resp.file is None:
            head.append(resp.body)
            sock.sendall(b"".join(head))
            return
        try:
            sock.sendall(b"".join(head))
            _send_file(sock, resp.file, resp.offset, length)
        finally:
            resp.file.close()  # type: ignore[attr-defined]

    @staticmethod
    def _send_error(sock: socket.socket, status: int) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(_STATUS_LINES[status] + b"Content-Length: 0\r\nConnection: close\r\n\r\n")


def _send_file(sock: socket.socket, file: object, offset: int, count: int) -> None:
    """Zero-copy from the page cache to the socket (TLS falls back to reads and sends)."""
    if isinstance(sock, ssl.SSLSocket):
        sock.sendfile(file, offset, count)  # type: ignore[arg-type]
        return
    out_fd = sock.fileno()
    in_fd = file.fileno()  # type: ignore[attr-defined]
    while count > 0:
        sent = os.sendfile(out_fd, in_fd, offset, min(count, SENDFILE_CHUNK))
        if sent == 0:
            raise ConnectionError("file shrank while sending")
        offset += sent
        count -= sent

"""HTTP/1.1 to the daemon over AF_UNIX or TCP with http.client, plus hijacked (upgraded) connections.

One connection per request keeps the client simple and thread-safe; a unix connect costs microseconds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from dockyard.client.errors import APIError, DaemonUnavailable
from dockyard.client.streams import MULTIPLEXED, iter_frames, iter_json_messages, iter_raw

API_VERSION = "1.47"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
USER_AGENT = "dockyard-client"

Params = dict[str, Any] | list[tuple[str, Any]] | None


@dataclass(frozen=True)
class Host:
    """A parsed daemon address: `unix:///path` or `tcp://host:port`."""

    scheme: str
    address: str  # socket path for unix, host name for tcp
    port: int = 0

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.address}"
        return f"tcp://{self.address}:{self.port}"


def parse_host(value: str | None) -> Host:
    """Parse `-H`/DOCKYARD_HOST; a bare path means unix, `host:port` means tcp (docker's rules)."""
    value = (value or DEFAULT_HOST).strip()
    if value.startswith("unix://"):
        path = value[len("unix://") :]
        if not path:
            raise ValueError(f"invalid host: {value}")
        return Host("unix", path)
    if value.startswith("/"):
        return Host("unix", value)
    rest = value[len("tcp://") :] if value.startswith("tcp://") else value
    if "://" in rest:
        raise ValueError(f"invalid bind address ({value}): unsupported proto")
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, "2375"
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise ValueError(f"invalid host: {value}")
    return Host("tcp", host, int(port))


def default_host() -> Host:
    """The host named by DOCKYARD_HOST, else the default unix socket."""
    return parse_host(os.environ.get("DOCKYARD_HOST") or DEFAULT_HOST)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix stream socket."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def encode_params(params: Params) -> str:
    """Query string: drop None values, booleans as 1/0, lists repeated (docker's `names=a&names=b`)."""
    if not params:
        return ""
    items = params.items() if isinstance(params, dict) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "1" if item else "0"
            elif isinstance(item, dict):
                item = json.dumps(item, separators=(",", ":"))
            pairs.append((key, str(item)))
    return urlencode(pairs)


def api_error_from_body(status: int, body: bytes) -> APIError:
    """Build an APIError from an error response: JSON `{"message"}` or plain text."""
    text = body.decode(errors="replace").strip()
    try:
        message = json.loads(text)["message"]
    except (ValueError, KeyError, TypeError):
        message = text or http.client.responses.get(status, "error")
    return APIError(status, str(message))


class Response:
    """A response whose body is read on demand, so streams (logs, pull, wait) can be consumed lazily."""

    def __init__(self, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse) -> None:
        self._conn = conn
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()

    def read(self, size: int = -1) -> bytes:
        return self.raw.read() if size < 0 else self.raw.read1(size)

    def content(self) -> bytes:
        try:
            return self.raw.read()
        finally:
            self.close()

    def json(self) -> Any:
        data = self.content()
        return json.loads(data) if data.strip() else None

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        try:
            while chunk := self.raw.read1(size):
                yield chunk
        finally:
            self.close()

    def iter_json(self) -> Iterator[dict[str, Any]]:
        """Decode a JSON-lines progress stream (pull, load, import)."""
        return iter_json_messages(self.iter_chunks())

    def iter_output(self, tty: bool) -> Iterator[tuple[int, bytes]]:
        """Logs/attach output: demultiplexed unless the container has a tty (raw stream)."""
        if tty and self.content_type != MULTIPLEXED:
            return iter_raw(self.read)
        return iter_frames(self.read)

    def close(self) -> None:
        self.raw.close()
        self._conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HijackedConnection:
    """The raw bidirectional socket left after `101 UPGRADED`, with bytes already read kept in front."""

    def __init__(self, sock: socket.socket, buffered: bytes, content_type: str) -> None:
        self.sock = sock
        self._buffered = buffered
        self.content_type = content_type

    @property
    def multiplexed(self) -> bool:
        return self.content_type == MULTIPLEXED

    def recv(self, size: int = 65536) -> bytes:
        if self._buffered:
            data, self._buffered = self._buffered[:size], self._buffered[size:]
            return data
        try:
            return self.sock.recv(size)
        except (ConnectionResetError, OSError):
            return b""

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: tell the daemon stdin ended while we keep reading the output."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def iter_output(self, tty: bool | None = None) -> Iterator[tuple[int, bytes]]:
        """Output as `(stream, bytes)`; framing follows the reply's Content-Type unless `tty` forces it."""
        multiplexed = self.multiplexed if tty is None else not tty
        return iter_frames(self.recv) if multiplexed else iter_raw(self.recv)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> HijackedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Sends versioned requests (`/v1.47/...`) to one daemon address."""

    def __init__(self, host: Host | str | None = None, api_version: str = API_VERSION,
                 timeout: float | None = None) -> None:
        self.host = host if isinstance(host, Host) else parse_host(host)
        self.api_version = api_version
        self.timeout = timeout

    def url(self, path: str, params: Params = None) -> str:
        prefix = f"/v{self.api_version}" if self.api_version and path != "/_ping" else ""
        query = encode_params(params)
        return f"{prefix}{path}" + (f"?{query}" if query else "")

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.host.scheme == "unix":
            return UnixHTTPConnection(self.host.address, timeout=timeout)
        return http.client.HTTPConnection(self.host.address, self.host.port, timeout=timeout)

    def _connect_socket(self, timeout: float | None) -> socket.socket:
        try:
            if self.host.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(self.host.address)
                except BaseException:
                    sock.close()
                    raise
                return sock
            return socket.create_connection((self.host.address, self.host.port), timeout=timeout)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
            raise DaemonUnavailable(self.host.url) from exc

    @staticmethod
    def _body(body: Any, json_body: Any, headers: dict[str, str]) -> Any:
        if json_body is not None:
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(json_body).encode()
        if body is None or isinstance(body, bytes | bytearray):
            return body
        # Files and iterators go out chunked: the size is often unknown (stdin, tar streams).
        headers["Transfer-Encoding"] = "chunked"
        return body

    def request(self, method: str, path: str, *, params: Params = None, json_body: Any = None,
                body: bytes | Iterable[bytes] | Any = None, headers: dict[str, str] | None = None,
                timeout: float | None = -1.0, check: bool = True) -> Response:
        """Send a request and return the response once its headers arrived; errors raise APIError."""
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        payload = self._body(body, json_body, headers)
        conn = self._connection(self.timeout if timeout == -1.0 else timeout)
        try:
            conn.request(method, self.url(path, params), body=payload, headers=headers,
                         encode_chunked=headers.get("Transfer-Encoding") == "chunked")
            raw = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
            conn.close()
            raise DaemonUnavailable(self.host.url) from exc
        except BaseException:
            conn.close()
            raise
        response = Response(conn, raw)
        if check and response.status >= 400:
            raise api_error_from_body(response.status, response.content())
        return response

    def hijack(self, method: str, path: str, *, params: Params = None, json_body: Any = None,
               timeout: float | None = None) -> HijackedConnection:
        """Send an upgrade request (attach, exec start) and return the raw socket after `101`."""
        payload = json.dumps(json_body).encode() if json_body is not None else b""
        lines = [
            f"{method} {self.url(path, params)} HTTP/1.1",
            "Host: localhost",
            f"User-Agent: {USER_AGENT}",
            "Connection: Upgrade",
            "Upgrade: tcp",
            f"Content-Length: {len(payload)}",
        ]
        if json_body is not None:
            lines.append("Content-Type: application/json")
        sock = self._connect_socket(timeout)
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            status, headers, rest = _read_response_head(sock)
            if status == 101 or (status == 200 and "upgrade" not in headers.get("connection", "").lower()
                                 and headers.get("content-type", "").startswith("application/vnd.docker")):
                sock.settimeout(None)
                return HijackedConnection(sock, rest, headers.get("content-type", "").split(";")[0])
            body = _read_body(sock, headers, rest)
            if status >= 400:
                raise api_error_from_body(status, body)
            raise APIError(status, f"unable to upgrade to tcp, received {status}")
        except BaseException:
            sock.close()
            raise


def _read_response_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read status line and headers; return them and the bytes after the blank line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise APIError(502, "connection closed before the response headers")
        data += chunk
        if len(data) > 1 << 20:
            raise APIError(502, "response headers too large")
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise APIError(502, f"malformed status line: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


def _read_body(sock: socket.socket, headers: dict[str, str], already: bytes) -> bytes:
    """Read a (small, error) body by Content-Length, chunked, or to EOF; `already` is what was read."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = already
        while not data.endswith(b"0\r\n\r\n") and (chunk := sock.recv(65536)):
            data += chunk
        return _dechunk(data)
    length = headers.get("content-length")
    chunks = [already]
    already_len = len(already)
    remaining = int(length) - already_len if length and length.isdigit() else -1
    while remaining != 0:
        chunk = sock.recv(65536 if remaining < 0 else min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        if remaining > 0:
            remaining -= len(chunk)
    return b"".join(chunks)


def _dechunk(data: bytes) -> bytes:
    """Decode a complete chunked transfer-encoded body."""
    out: list[bytes] = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)

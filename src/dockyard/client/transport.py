"""HTTP/1.1 to the daemon over AF_UNIX or TCP, plus hijacked (upgraded) connections.

One connection per request keeps the client simple and thread-safe; a unix connect costs microseconds.
The protocol code is our own small HTTP/1.1 reader rather than http.client: importing http.client
(email.parser, ssl) alone costs ~14 ms, a tenth of `dockyard run`'s whole budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterable, Iterator

from dockyard.client.errors import APIError, DaemonUnavailable
from dockyard.client.streams import MULTIPLEXED, iter_frames, iter_json_messages, iter_raw

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

API_VERSION = "1.47"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
USER_AGENT = "dockyard-client"

Params = "dict[str, Any] | list[tuple[str, Any]] | None"  # a string: Any exists only for the type checker


class Host:
    """A parsed daemon address: `unix:///path` or `tcp://host:port`."""

    __slots__ = ("address", "port", "scheme")

    def __init__(self, scheme: str, address: str, port: int = 0) -> None:
        self.scheme = scheme
        self.address = address  # socket path for unix, host name for tcp
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and (self.scheme, self.address, self.port) == (
            other.scheme,
            other.address,
            other.port,
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.address, self.port))

    def __repr__(self) -> str:
        return f"Host({self.scheme!r}, {self.address!r}, {self.port})"

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


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def percent_encode(text: str, safe: str = "") -> str:
    """urllib.parse.quote's escaping (UTF-8, unreserved characters kept) without importing
    urllib.parse and ipaddress on every CLI start."""
    keep = _UNRESERVED.union(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


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
    return "&".join(f"{_form(key)}={_form(value)}" for key, value in pairs)


def _form(text: str) -> str:
    """application/x-www-form-urlencoded, as urlencode writes it (space as +)."""
    return percent_encode(text, " ").replace(" ", "+")


def api_error_from_body(status: int, body: bytes) -> APIError:
    """Build an APIError from an error response: JSON `{"message"}` or plain text."""
    text = body.decode(errors="replace").strip()
    try:
        message = json.loads(text)["message"]
    except (ValueError, KeyError, TypeError):
        message = text or f"HTTP {status}"
    return APIError(status, str(message))


class Headers(dict):
    """Response headers with case-insensitive `get` (keys are stored lowercased)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class BodyReader:
    """Reads one response body: by Content-Length, chunked, or until the connection closes."""

    def __init__(self, sock: socket.socket, headers: Headers, buffered: bytes, method: str, status: int) -> None:
        self._sock = sock
        self._buf = bytearray(buffered)
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        self._left = 0 if no_body else (int(length) if length and length.isdigit() else -1)
        self._chunk_left = 0
        self._done = no_body or self._left == 0

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if not data:
            return False
        self._buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise APIError(502, "connection closed inside a chunked response")
        line, _, rest = bytes(self._buf).partition(b"\r\n")
        self._buf = bytearray(rest)
        return line

    def read1(self, size: int = 65536) -> bytes:
        """Up to `size` bytes as soon as some are available; b"" at the end of the body."""
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                self._chunk_left = int(self._line().split(b";")[0] or b"0", 16)
                if self._chunk_left == 0:
                    while self._line():  # trailers until the blank line
                        pass
                    self._done = True
                    return b""
            if not self._buf and not self._fill():
                raise APIError(502, "connection closed inside a chunked response")
            n = min(size, self._chunk_left, len(self._buf))
            out = bytes(self._buf[:n])
            del self._buf[:n]
            self._chunk_left -= n
            if self._chunk_left == 0:
                self._line()  # the CRLF after the chunk
            return out
        if not self._buf and not self._fill():
            self._done = True
            return b""
        n = min(size, len(self._buf)) if self._left < 0 else min(size, len(self._buf), self._left)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        if self._left > 0:
            self._left -= n
            self._done = self._left == 0
        return out

    def read(self) -> bytes:
        parts = []
        while chunk := self.read1(1 << 20):
            parts.append(chunk)
        return b"".join(parts)


class Response:
    """A response whose body is read on demand, so streams (logs, pull, wait) can be consumed lazily."""

    def __init__(self, sock: socket.socket, status: int, headers: Headers, body: BodyReader) -> None:
        self._sock = sock
        self.raw = body
        self.status = status
        self.headers = headers

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
        with contextlib.suppress(OSError):
            self._sock.close()

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

    def __init__(
        self, host: Host | str | None = None, api_version: str = API_VERSION, timeout: float | None = None
    ) -> None:
        self.host = host if isinstance(host, Host) else parse_host(host)
        self.api_version = api_version
        self.timeout = timeout

    def url(self, path: str, params: Params = None) -> str:
        prefix = f"/v{self.api_version}" if self.api_version and path != "/_ping" else ""
        query = encode_params(params)
        return f"{prefix}{path}" + (f"?{query}" if query else "")

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

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json_body: Any = None,
        body: bytes | Iterable[bytes] | Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = -1.0,
        check: bool = True,
    ) -> Response:
        """Send a request and return the response once its headers arrived; errors raise APIError."""
        headers = {"Host": "localhost", "User-Agent": USER_AGENT, **(headers or {})}
        payload = self._body(body, json_body, headers)
        if payload is not None and headers.get("Transfer-Encoding") != "chunked":
            headers["Content-Length"] = str(len(payload))
        elif payload is None and method in ("POST", "PUT"):
            headers["Content-Length"] = "0"
        sock = self._connect_socket(self.timeout if timeout == -1.0 else timeout)
        try:
            head = f"{method} {self.url(path, params)} HTTP/1.1\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            if payload is None or headers.get("Transfer-Encoding") != "chunked":
                sock.sendall(head.encode("latin-1") + (payload or b""))
            else:
                sock.sendall(head.encode("latin-1"))
                _send_chunked(sock, payload)
            status, raw_headers, rest = _read_response_head(sock)
        except BaseException:
            sock.close()
            raise
        response_headers = Headers(raw_headers)
        response = Response(sock, status, response_headers, BodyReader(sock, response_headers, rest, method, status))
        if check and response.status >= 400:
            raise api_error_from_body(response.status, response.content())
        return response

    def hijack(
        self, method: str, path: str, *, params: Params = None, json_body: Any = None, timeout: float | None = None
    ) -> HijackedConnection:
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
            if status == 101 or (
                status == 200
                and "upgrade" not in headers.get("connection", "").lower()
                and headers.get("content-type", "").startswith("application/vnd.docker")
            ):
                sock.settimeout(None)
                return HijackedConnection(sock, rest, headers.get("content-type", "").split(";")[0])
            body = _read_body(sock, headers, rest)
            if status >= 400:
                raise api_error_from_body(status, body)
            raise APIError(status, f"unable to upgrade to tcp, received {status}")
        except BaseException:
            sock.close()
            raise


def _send_chunked(sock: socket.socket, payload: Any) -> None:
    """Stream a file object or an iterable of bytes with chunked transfer encoding."""
    if hasattr(payload, "read"):
        chunks: Iterable[bytes] = iter(lambda: payload.read(1 << 16), b"")
    else:
        chunks = payload
    for chunk in chunks:
        if chunk:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    sock.sendall(b"0\r\n\r\n")


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

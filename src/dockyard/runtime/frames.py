"""The Engine API's 8-byte stream frame: `[kind, 0, 0, 0, size:uint32 BE]` then `size` bytes.

Used on the monitor socket (kinds 0-3, 3 carrying a JSON control object) and by the API for
multiplexed attach/logs streams (stdcopy: 0 stdin, 1 stdout, 2 stderr, 3 systemerr). Only
`struct` and `json` are imported: the monitor loads this module.
"""

from __future__ import annotations

import json
import struct

TYPE_CHECKING = False  # typing stays out of the monitor's memory
if TYPE_CHECKING:
    from typing import Any

STDIN = 0
STDOUT = 1
STDERR = 2
CONTROL = 3  # monitor socket: a JSON object; Engine API streams: "systemerr"

HEADER_SIZE = 8
MAX_FRAME = 1 << 26  # a larger announced size means a corrupt or hostile peer
_HEADER = struct.Struct(">BxxxI")


class FrameError(ValueError):
    """The peer sent bytes that are not a valid frame stream."""


def encode_frame(kind: int, data: bytes = b"") -> bytes:
    """One frame: header then payload."""
    return _HEADER.pack(kind, len(data)) + data


def encode_control(obj: dict[str, Any]) -> bytes:
    """A control frame carrying `obj` as compact JSON."""
    return encode_frame(CONTROL, json.dumps(obj, separators=(",", ":")).encode())


def decode_control(payload: bytes) -> dict[str, Any]:
    """Parse a control frame's payload; FrameError if it is not a JSON object."""
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise FrameError(f"bad control frame: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError("control frame is not a JSON object")
    return obj


def parse_header(header: bytes) -> tuple[int, int]:
    """(kind, size) from an 8-byte header."""
    kind, size = _HEADER.unpack(header)
    if kind > CONTROL or size > MAX_FRAME:
        raise FrameError(f"bad frame header {header.hex()}")
    return kind, size


class FrameDecoder:
    """Incremental decoder for non-blocking readers: feed bytes, collect complete frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append `data`; return every frame now complete, in order."""
        buf = self._buf
        buf += data
        frames: list[tuple[int, bytes]] = []
        pos = 0
        while len(buf) - pos >= HEADER_SIZE:
            kind, size = parse_header(bytes(buf[pos : pos + HEADER_SIZE]))
            end = pos + HEADER_SIZE + size
            if len(buf) < end:
                break
            frames.append((kind, bytes(buf[pos + HEADER_SIZE : end])))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)


def recv_exact(sock: Any, size: int) -> bytes | None:
    """Read exactly `size` bytes from a blocking socket; None on EOF before the first byte."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            if chunks:
                raise FrameError("connection closed inside a frame")
            return None
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: Any) -> tuple[int, bytes] | None:
    """Read one frame from a blocking socket; None on a clean EOF between frames."""
    header = recv_exact(sock, HEADER_SIZE)
    if header is None:
        return None
    kind, size = parse_header(header)
    if not size:
        return kind, b""
    payload = recv_exact(sock, size)
    if payload is None:
        raise FrameError("connection closed inside a frame")
    return kind, payload

"""Stream decoders for the Engine API: JSON message streams and the 8-byte multiplexed framing.

Both work on a `read(n) -> bytes` callable so that they serve HTTP responses and hijacked sockets alike.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER = struct.Struct(">BxxxL")
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"

Reader = Callable[[int], bytes]


def read_exactly(read: Reader, size: int) -> bytes:
    """Read `size` bytes, fewer only at end of stream."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        chunk = read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def iter_frames(read: Reader) -> Iterator[tuple[int, bytes]]:
    """Yield `(stream, payload)` from a multiplexed (stdcopy) stream until it ends.

    A truncated header or payload ends the iteration: the peer closed the connection.
    """
    while True:
        header = read_exactly(read, HEADER.size)
        if len(header) < HEADER.size:
            return
        stream, size = HEADER.unpack(header)
        payload = read_exactly(read, size)
        if payload:
            yield stream, payload
        if len(payload) < size:
            return


def encode_frame(stream: int, payload: bytes) -> bytes:
    """Frame `payload` for a multiplexed stream (used by tests and stdin forwarding peers)."""
    return HEADER.pack(stream, len(payload)) + payload


def iter_raw(read: Reader, chunk_size: int = 32768) -> Iterator[tuple[int, bytes]]:
    """Yield a raw (tty) stream as stdout chunks, the same shape as `iter_frames`."""
    while True:
        chunk = read(chunk_size)
        if not chunk:
            return
        yield STDOUT, chunk


def iter_json_messages(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode a stream of concatenated JSON values (newline-separated or not), as Go's json.Decoder."""
    decoder = json.JSONDecoder()
    buffer = ""
    pending = b""
    for chunk in chunks:
        pending += chunk
        try:
            buffer += pending.decode()
            pending = b""
        except UnicodeDecodeError:
            continue  # a multi-byte character is split across chunks
        while True:
            stripped = buffer.lstrip()
            if not stripped:
                buffer = ""
                break
            try:
                value, end = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                buffer = stripped
                break
            buffer = stripped[end:]
            yield value
    if buffer.strip():
        raise ValueError(f"truncated JSON stream: {buffer.strip()[:80]!r}")

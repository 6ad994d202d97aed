"""Layer compression: detect gzip/zstd by magic bytes and (de)compress as streams.

Extraction speed is pull speed, so gzip goes through ISA-L (isal.igzip) when it is importable and
falls back to zlib otherwise. isal and zstandard are imported lazily: the CLI never needs them.
"""

from __future__ import annotations

import io
from types import ModuleType
from typing import BinaryIO, Literal

Kind = Literal["gzip", "zstd"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HEAD_SIZE = 4
_FAST_GZIP_LEVEL = 1  # isal accepts 0-3, zlib 0-9; 1 is fast on both
_DEFAULT_ZSTD_LEVEL = 3


def detect(head: bytes) -> Kind | None:
    """The compression of a stream from its first bytes (4 are enough), None for uncompressed."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def _isal() -> ModuleType | None:
    """isal.igzip when installed (tests monkeypatch this to exercise the zlib fallback)."""
    try:
        from isal import igzip
    except ImportError:
        return None
    return igzip


def _isal_threaded() -> ModuleType | None:
    try:
        from isal import igzip_threaded
    except ImportError:
        return None
    return igzip_threaded


class _PrefixedReader(io.RawIOBase):
    """Replays bytes already read from a stream, then continues with the stream itself.

    Lets detection consume the magic bytes of a non-seekable stream (a socket, a pipe)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def _read_head(fileobj: BinaryIO) -> tuple[bytes, BinaryIO]:
    """Peek at the magic bytes without losing them, whatever kind of stream fileobj is."""
    peek = getattr(fileobj, "peek", None)
    if peek is not None:
        head = peek(_HEAD_SIZE)[:_HEAD_SIZE]
        if len(head) >= _HEAD_SIZE or not head:
            return head, io.BufferedReader(_PrefixedReader(b"", fileobj), buffer_size=1 << 20)
    head = b""
    while len(head) < _HEAD_SIZE:
        chunk = fileobj.read(_HEAD_SIZE - len(head))
        if not chunk:
            break
        head += chunk
    return head, io.BufferedReader(_PrefixedReader(head, fileobj), buffer_size=1 << 20)


def open_decompressed(fileobj: BinaryIO) -> BinaryIO:
    """A readable stream of fileobj's content, decompressed if it is gzip or zstd (autodetected).

    With isal, gzip is inflated in a worker thread so it overlaps with untarring (~20% faster
    than `gzip -d | tar -x`). Close the returned stream (`with ...:`): that stops the worker.
    Closing it does not close fileobj."""
    head, stream = _read_head(fileobj)
    kind = detect(head)
    if kind is None:
        return stream
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)  # type: ignore[return-value]
    if _isal() is not None and (threaded := _isal_threaded()) is not None:
        return threaded.open(stream, "rb", threads=1)  # type: ignore[no-any-return]
    import gzip

    return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]


def compressor(kind: Kind, out: BinaryIO, level: int | None = None) -> BinaryIO:
    """A writable stream compressing into `out`; close() it to flush the trailer (out stays open).

    gzip defaults to a fast level (layer push/save speed matters more than a few percent of size)
    and a zero mtime so the same tar always gives the same blob digest."""
    if kind == "zstd":
        import zstandard

        zlevel = _DEFAULT_ZSTD_LEVEL if level is None else level
        return zstandard.ZstdCompressor(level=zlevel).stream_writer(out, closefd=False)  # type: ignore[return-value]
    if kind != "gzip":
        raise ValueError(f"unsupported compression {kind!r}")
    igzip = _isal()
    if igzip is not None:
        glevel = _FAST_GZIP_LEVEL if level is None else min(level, 3)
        return igzip.IGzipFile(fileobj=out, mode="wb", compresslevel=glevel, mtime=0)  # type: ignore[return-value]
    import gzip

    glevel = _FAST_GZIP_LEVEL if level is None else level
    return gzip.GzipFile(fileobj=out, mode="wb", compresslevel=glevel, mtime=0)  # type: ignore[return-value]

"""Compression: detection by magic, streaming round trips through isal, zlib fallback and zstd."""

from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard

from dockyard.image import compression
from dockyard.image.compression import compressor, detect, open_decompressed

PAYLOAD = os.urandom(1 << 16) + b"layer tar bytes " * 50_000


class OneWayStream(io.RawIOBase):
    """A socket-like stream: no peek, no seek, short reads."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), len(self._data), 3000)
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def compress(kind: str, data: bytes) -> bytes:
    out = io.BytesIO()
    writer = compressor(kind, out)
    writer.write(data)
    writer.close()
    assert not out.closed  # the caller's stream stays usable
    return out.getvalue()


def read_all(stream) -> bytes:
    chunks = []
    while chunk := stream.read(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(params=["isal", "zlib"])
def gzip_backend(request, monkeypatch):
    if request.param == "zlib":
        monkeypatch.setattr(compression, "_isal", lambda: None)
    else:
        assert compression._isal() is not None, "isal is a declared dependency"
    return request.param


def test_detect():
    assert detect(b"\x1f\x8b\x08\x00") == "gzip"
    assert detect(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect(b"usr/") is None
    assert detect(b"") is None


def test_gzip_round_trip(gzip_backend):
    blob = compress("gzip", PAYLOAD)
    assert detect(blob[:4]) == "gzip"
    assert gzip.decompress(blob) == PAYLOAD  # standard gzip, readable by anyone
    assert blob == compress("gzip", PAYLOAD)  # mtime 0: same input, same digest
    assert read_all(open_decompressed(io.BytesIO(blob))) == PAYLOAD
    assert read_all(open_decompressed(io.BufferedReader(OneWayStream(blob)))) == PAYLOAD


def test_gzip_reads_multi_member_streams(gzip_backend):
    blob = gzip.compress(b"first ") + gzip.compress(b"second")
    assert read_all(open_decompressed(io.BytesIO(blob))) == b"first second"


def test_zstd_round_trip():
    blob = compress("zstd", PAYLOAD)
    assert detect(blob[:4]) == "zstd"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == PAYLOAD
    assert read_all(open_decompressed(OneWayStream(blob))) == PAYLOAD


def test_uncompressed_passes_through_non_peekable_stream():
    assert read_all(open_decompressed(OneWayStream(PAYLOAD))) == PAYLOAD
    assert read_all(open_decompressed(OneWayStream(b"ab"))) == b"ab"
    assert read_all(open_decompressed(io.BytesIO(b""))) == b""


def test_corrupt_gzip_raises():
    blob = compress("gzip", PAYLOAD)
    with pytest.raises((OSError, EOFError)):
        read_all(open_decompressed(io.BytesIO(blob[: len(blob) // 2])))


def test_unknown_kind():
    with pytest.raises(ValueError, match="unsupported"):
        compressor("bzip2", io.BytesIO())  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["gzip", "zstd", None])
def test_closing_the_reader_leaves_the_source_open(kind):
    data = compress(kind, PAYLOAD) if kind else PAYLOAD
    source = io.BufferedReader(io.BytesIO(data)) if kind is None else io.BytesIO(data)  # peekable too
    with open_decompressed(source) as reader:
        assert reader.read(10) == PAYLOAD[:10]
    assert not source.closed

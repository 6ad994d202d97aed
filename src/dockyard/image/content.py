"""A containerd-style content store: immutable blobs addressed by digest.

Blobs are written to `ingest/` while being hashed and renamed into `blobs/` only once the digest and
size match, so a blob that exists is always complete and verified.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import DigestMismatch, InvalidParameter, NotFound
from dockyard.util.fs import fsync_dir

_DIGEST_RE = re.compile(r"^sha256:([a-f0-9]{64})$")
CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    """Return the hex part of a sha256 digest; refuse anything else before it can become a path."""
    match = _DIGEST_RE.match(digest)
    if match is None:
        raise InvalidParameter(f"invalid digest: {digest!r}")
    return match.group(1)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ContentStore:
    """Blobs under `<root>/blobs/sha256/<hex>`, partial writes under `<root>/ingest/`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_ingest()

    def _sweep_ingest(self) -> None:
        """Partial writes left by a crash are garbage: nothing refers to them."""
        for entry in self.ingest_dir.iterdir():
            entry.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        return self.blobs / check_digest(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> bool:
        """Remove a blob; returns whether it existed."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def walk(self) -> Iterator[tuple[str, int]]:
        """Yield (digest, size) of every committed blob."""
        for entry in self.blobs.iterdir():
            if _DIGEST_RE.match("sha256:" + entry.name) and entry.is_file():
                yield "sha256:" + entry.name, entry.stat().st_size

    def ingest(self, stream: BinaryIO, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Copy `stream` into the store, verifying `expected` digest and `size` when given.

        Nothing is recorded when verification fails (DigestMismatch)."""
        if expected is not None:
            check_digest(expected)
            if self.exists(expected):
                return self._verify_existing(stream, expected, size)
        tmp = self.ingest_dir / secrets.token_hex(16)
        hasher = hashlib.sha256()
        written = 0
        try:
            with open(tmp, "xb") as out:
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + hasher.hexdigest()
            _verify(digest, written, expected, size)
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.path(digest))
            fsync_dir(self.blobs)
        finally:
            tmp.unlink(missing_ok=True)
        return digest, written

    def ingest_bytes(self, data: bytes, expected: str | None = None) -> tuple[str, int]:
        import io

        return self.ingest(io.BytesIO(data), expected, len(data) if expected else None)

    def _verify_existing(self, stream: BinaryIO, expected: str, size: int | None) -> tuple[str, int]:
        """The blob is already stored: still check the offered data so a mismatch is reported."""
        hasher = hashlib.sha256()
        written = 0
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
            written += len(chunk)
        _verify("sha256:" + hasher.hexdigest(), written, expected, size)
        return expected, written


def _verify(digest: str, written: int, expected: str | None, size: int | None) -> None:
    if size is not None and written != size:
        raise DigestMismatch(f"size mismatch: expected {size} bytes, got {written}")
    if expected is not None and digest != expected:
        raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")

"""The content store verifies before it records, and never builds a path from an unchecked digest."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from dockyard.errors import DigestMismatch, InvalidParameter, NotFound
from dockyard.image.content import ContentStore


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def test_ingest_open_walk_delete(store: ContentStore) -> None:
    data = b"hello world" * 100_000
    digest, size = store.ingest(io.BytesIO(data), digest_of(data), len(data))
    assert (digest, size) == (digest_of(data), len(data))
    assert store.exists(digest)
    assert store.path(digest) == store.root / "blobs" / "sha256" / digest.removeprefix("sha256:")
    with store.open(digest) as f:
        assert f.read() == data
    assert list(store.walk()) == [(digest, len(data))]
    assert store.delete(digest) is True
    assert store.delete(digest) is False
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.open(digest)


def test_ingest_without_expectation_computes_digest(store: ContentStore) -> None:
    digest, size = store.ingest(io.BytesIO(b"abc"))
    assert digest == digest_of(b"abc") and size == 3
    again = store.ingest(io.BytesIO(b"abc"), digest_of(b"abc"))
    assert again == (digest, 3)


def test_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    wrong = digest_of(b"other")
    with pytest.raises(DigestMismatch):
        store.ingest(io.BytesIO(b"payload"), wrong)
    assert list(store.walk()) == []
    assert list((store.root / "ingest").iterdir()) == []
    assert not store.exists(digest_of(b"payload"))


def test_size_mismatch_leaves_nothing(store: ContentStore) -> None:
    with pytest.raises(DigestMismatch, match="size"):
        store.ingest(io.BytesIO(b"payload"), digest_of(b"payload"), 3)
    assert list(store.walk()) == []


def test_mismatch_reported_even_when_blob_already_stored(store: ContentStore) -> None:
    store.ingest(io.BytesIO(b"payload"))
    with pytest.raises(DigestMismatch):
        store.ingest(io.BytesIO(b"tampered"), digest_of(b"payload"))
    assert store.read(digest_of(b"payload")) == b"payload"


def test_failing_stream_leaves_no_partial_file(store: ContentStore) -> None:
    class Broken(io.RawIOBase):
        def readinto(self, b):  # type: ignore[no-untyped-def]
            raise OSError("connection reset")

    with pytest.raises(OSError):
        store.ingest(Broken())  # type: ignore[arg-type]
    assert list((store.root / "ingest").iterdir()) == []
    assert list(store.walk()) == []


@pytest.mark.parametrize(
    "bad",
    ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:" + "a" * 32, "a" * 64, "sha256:" + "a" * 63,
     "sha256:" + "a" * 64 + "/x", ""],
)  # fmt: skip
def test_invalid_digests_never_become_paths(store: ContentStore, bad: str) -> None:
    for op in (store.path, store.exists, store.open, store.delete):
        with pytest.raises(InvalidParameter):
            op(bad)
    with pytest.raises(InvalidParameter):
        store.ingest(io.BytesIO(b"x"), bad)


def test_stale_ingest_files_swept_at_open(tmp_path: Path) -> None:
    root = tmp_path / "content"
    ContentStore(root)
    (root / "ingest" / "leftover").write_bytes(b"partial")
    ContentStore(root)
    assert list((root / "ingest").iterdir()) == []

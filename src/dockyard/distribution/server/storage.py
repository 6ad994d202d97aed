"""Filesystem storage for the registry: blobs by digest, per-repository links, uploads, manifests, tags.

Atomicity: an upload is hashed while it is written into `uploads/<uuid>/data` and renamed into
`blobs/` only once its digest matches, so a blob path that exists is always complete and verified;
a crash mid-upload leaves only an upload directory, which is never served (gc purges old ones).
Two uploads of the same blob both rename verified, identical bytes: whichever lands last wins.
A repository sees a blob only through its own link, so a digest alone grants no cross-repo access.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.distribution.server.errors import RegistryError
from dockyard.distribution.server.paths import (
    PathMapper,
    check_digest,
    check_name,
    check_tag,
    is_digest,
)
from dockyard.util.fs import atomic_write, fsync_dir

CHUNK = 1 << 20
MAX_MANIFEST = 4 << 20

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
_UUID_LEN = 32


class Reader(Protocol):
    def read(self, n: int = -1) -> bytes: ...


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    data: bytes


def _hasher(digest: str) -> Any:
    return hashlib.new(digest.partition(":")[0])


def _touch(path: str) -> None:
    """Create an empty link file (and its parents); existing is fine."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class ManifestCache:
    """Manifest bytes by digest (immutable content), bounded by total size; safe without locks under the GIL."""

    def __init__(self, limit: int = 64 << 20) -> None:
        self._items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[str, bytes] | None:
        return self._items.get(digest)

    def put(self, digest: str, media_type: str, data: bytes) -> None:
        with self._lock:
            if digest in self._items:
                return
            self._items[digest] = (media_type, data)
            self._size += len(data)
            while self._size > self._limit and self._items:
                _, (_, old) = self._items.popitem(last=False)
                self._size -= len(old)


class Storage:
    """The registry's state on disk; every method validates its names and digests first."""

    def __init__(self, root: str) -> None:
        self.paths = PathMapper(root)
        for d in (self.paths.blobs, self.paths.uploads, self.paths.repositories):
            os.makedirs(d, exist_ok=True)
        self.cache = ManifestCache()
        # uuid -> (bytes hashed so far, sha256 state): saves re-reading an upload at PUT time.
        self._hash_state: dict[str, tuple[int, Any]] = {}

    # ---- repositories -------------------------------------------------------------------------
    def repo_exists(self, name: str) -> bool:
        base = self.paths.repo(check_name(name))
        return os.path.isdir(f"{base}/_manifests") or os.path.isdir(f"{base}/_layers")

    def repositories(self) -> list[str]:
        """Every repository holding manifests, sorted (the catalog)."""
        out: list[str] = []
        top = self.paths.repositories
        for dirpath, dirnames, _ in os.walk(top):
            if "_manifests" in dirnames:
                out.append(os.path.relpath(dirpath, top))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(out)

    # ---- blobs --------------------------------------------------------------------------------
    def blob_path(self, name: str, digest: str) -> str:
        """The verified blob file of `digest` as `name` sees it, or BLOB_UNKNOWN."""
        check_name(name)
        check_digest(digest)
        if not os.path.exists(self.paths.layer_link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", {"digest": digest})
        return self.paths.blob(digest)

    def has_blob(self, name: str, digest: str) -> bool:
        return os.path.exists(self.paths.layer_link(name, digest)) and os.path.exists(self.paths.blob(digest))

    def link_blob(self, name: str, digest: str) -> None:
        _touch(self.paths.layer_link(name, digest))

    def delete_blob(self, name: str, digest: str) -> None:
        """Unlink the blob from the repository; the content goes at the next gc if nothing else uses it."""
        check_name(name)
        check_digest(digest)
        if not _unlink(self.paths.layer_link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", {"digest": digest})

    def mount_blob(self, name: str, source: str, digest: str) -> bool:
        """Cross-repository mount: link a blob `source` holds into `name`; False when `source` lacks it."""
        check_name(source)
        check_digest(digest)
        if not self.has_blob(source, digest):
            return False
        self.link_blob(check_name(name), digest)
        return True

    def _commit_blob(self, tmp: str, digest: str) -> None:
        """Rename a verified file into place (an identical blob already there is as good)."""
        final = self.paths.blob(digest)
        if os.path.exists(final):
            _unlink(tmp)
            return
        parent = os.path.dirname(final)
        os.makedirs(parent, exist_ok=True)
        os.rename(tmp, final)
        fsync_dir(parent)

    # ---- uploads ------------------------------------------------------------------------------
    def start_upload(self, name: str) -> str:
        check_name(name)
        uuid = uuidlib.uuid4().hex
        d = self.paths.upload_dir(uuid)
        os.makedirs(d)
        atomic_write(f"{d}/info.json", json.dumps({"name": name, "started": time.time()}).encode())
        open(f"{d}/data", "wb").close()
        return uuid

    def _upload_dir(self, name: str, uuid: str) -> str:
        check_name(name)
        if len(uuid) != _UUID_LEN or not all(c in "0123456789abcdef" for c in uuid):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uuid})
        d = self.paths.upload_dir(uuid)
        try:
            with open(f"{d}/info.json", "rb") as f:
                info = json.load(f)
        except (FileNotFoundError, ValueError):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uuid}) from None
        if info.get("name") != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uuid})
        return d

    def upload_size(self, name: str, uuid: str) -> int:
        d = self._upload_dir(name, uuid)
        try:
            return os.stat(f"{d}/data").st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uuid}) from None

    @contextlib.contextmanager
    def _locked_data(self, name: str, uuid: str) -> Iterator[Any]:
        """The upload's data file, exclusively locked (PATCH/PUT of one upload never interleave)."""
        d = self._upload_dir(name, uuid)
        try:
            f = open(f"{d}/data", "r+b")  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uuid}) from None
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            if not os.path.exists(f"{d}/data"):  # finished or cancelled while we waited
                raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uuid})
            f.seek(0, os.SEEK_END)
            yield f

    def append_upload(self, name: str, uuid: str, body: Reader, length: int | None, start: int | None = None) -> int:
        """Append a chunk (at `start` when the client said so: out of order is 416); returns the new size."""
        with self._locked_data(name, uuid) as f:
            size = f.tell()
            if start is not None and start != size:
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID",
                    {"expected": size, "got": start},
                    status=416,
                    message="invalid content range",
                    headers={"Range": f"0-{max(size - 1, 0)}"},
                )
            return self._write_body(uuid, f, size, body, length)

    def _write_body(self, uuid: str, f: Any, size: int, body: Reader, length: int | None) -> int:
        state = self._hash_state.get(uuid)
        hasher = state[1] if state and state[0] == size else None
        if hasher is None and size == 0:
            hasher = hashlib.sha256()
        left = length
        while left is None or left > 0:
            data = body.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                break
            f.write(data)
            if hasher is not None:
                hasher.update(data)
            size += len(data)
            if left is not None:
                left -= len(data)
        f.flush()
        if left:
            raise RegistryError("SIZE_INVALID", {"missing": left})
        if hasher is not None:
            self._hash_state[uuid] = (size, hasher)
        return size

    def finish_upload(self, name: str, uuid: str, digest: str | None, body: Reader, length: int | None) -> str:
        """Append the last chunk, verify the digest, commit the blob and link it; wrong digest stores nothing."""
        check_digest(digest)
        assert digest is not None
        d = self._upload_dir(name, uuid)
        try:
            with self._locked_data(name, uuid) as f:
                size = self._write_body(uuid, f, f.tell(), body, length)
                state = self._hash_state.pop(uuid, None)
                if digest.startswith("sha256:") and state and state[0] == size:
                    actual = "sha256:" + state[1].hexdigest()
                else:
                    actual = self._rehash(f, digest)
                if actual != digest:
                    raise RegistryError("DIGEST_INVALID", {"digest": digest, "actual": actual})
                os.fsync(f.fileno())
                self._commit_blob(f"{d}/data", digest)
        except RegistryError as exc:
            if exc.code in ("DIGEST_INVALID", "SIZE_INVALID"):
                self._remove_upload(uuid, d)
            raise
        self._remove_upload(uuid, d)
        self.link_blob(name, digest)
        return digest

    @staticmethod
    def _rehash(f: Any, digest: str) -> str:
        hasher = _hasher(digest)
        f.seek(0)
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
        return f"{hasher.name}:{hasher.hexdigest()}"

    def cancel_upload(self, name: str, uuid: str) -> None:
        self._remove_upload(uuid, self._upload_dir(name, uuid))

    def _remove_upload(self, uuid: str, d: str) -> None:
        self._hash_state.pop(uuid, None)
        _unlink(f"{d}/data")
        _unlink(f"{d}/info.json")
        with contextlib.suppress(OSError):
            os.rmdir(d)

    def put_blob(self, name: str, digest: str | None, body: Reader, length: int | None) -> str:
        """Monolithic upload (POST ?digest= with the body)."""
        check_digest(digest)
        uuid = self.start_upload(name)
        try:
            return self.finish_upload(name, uuid, digest, body, length)
        finally:
            with contextlib.suppress(RegistryError):
                self.cancel_upload(name, uuid)

    # ---- manifests ----------------------------------------------------------------------------
    def resolve(self, name: str, ref: str) -> str:
        """Tag or digest -> the digest of a manifest this repository holds, or MANIFEST_UNKNOWN."""
        check_name(name)
        if is_digest(ref):
            digest = ref
        else:
            check_tag(ref)
            try:
                with open(self.paths.tag(name, ref), "rb") as f:
                    digest = f.read().decode().strip()
            except FileNotFoundError:
                raise self._unknown(name, ref) from None
        if not is_digest(digest) or not os.path.exists(self.paths.revision_link(name, digest)):
            raise self._unknown(name, ref)
        return digest

    def _unknown(self, name: str, ref: str) -> RegistryError:
        if not self.repo_exists(name):
            return RegistryError("NAME_UNKNOWN", {"name": name})
        return RegistryError("MANIFEST_UNKNOWN", {"tag" if not is_digest(ref) else "digest": ref})

    def get_manifest(self, name: str, ref: str) -> Manifest:
        digest = self.resolve(name, ref)
        hit = self.cache.get(digest)
        if hit is None:
            try:
                with open(self.paths.blob(digest), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise RegistryError("MANIFEST_UNKNOWN", {"digest": digest}) from None
            media_type = _media_type(_parse_manifest(data), "")
            self.cache.put(digest, media_type, data)
            return Manifest(digest, media_type, data)
        return Manifest(digest, hit[0], hit[1])

    def put_manifest(self, name: str, ref: str, data: bytes, content_type: str) -> tuple[str, str | None]:
        """Validate and store a manifest; returns (digest, subject digest or None)."""
        check_name(name)
        if len(data) > MAX_MANIFEST:
            raise RegistryError("MANIFEST_INVALID", {"limit": MAX_MANIFEST}, message="manifest too big", status=413)
        by_digest = is_digest(ref)
        if not by_digest:
            check_tag(ref)
        hasher = _hasher(ref if by_digest else "sha256:")
        hasher.update(data)
        digest = f"{hasher.name}:{hasher.hexdigest()}"
        if by_digest and digest != ref:
            raise RegistryError("DIGEST_INVALID", {"digest": ref, "actual": digest})
        doc = _parse_manifest(data)
        media_type = _media_type(doc, content_type)
        self._check_references(name, doc, media_type)
        subject = _subject(doc)
        if not os.path.exists(self.paths.blob(digest)):
            tmp = f"{self.paths.uploads}/.manifest-{uuidlib.uuid4().hex}"
            atomic_write(tmp, data)
            self._commit_blob(tmp, digest)
        if subject:
            desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
            artifact = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if artifact and media_type in IMAGE_TYPES | {OCI_INDEX}:
                desc["artifactType"] = artifact
            if doc.get("annotations"):
                desc["annotations"] = doc["annotations"]
            path = f"{self.paths.referrers(name, subject)}/{digest.partition(':')[2]}"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, json.dumps(desc).encode())
        _touch(self.paths.revision_link(name, digest))
        if not by_digest:
            os.makedirs(self.paths.tags(name), exist_ok=True)
            atomic_write(self.paths.tag(name, ref), digest.encode())
        self.cache.put(digest, media_type, data)
        return digest, subject

    def _check_references(self, name: str, doc: dict[str, Any], media_type: str) -> None:
        if media_type in INDEX_TYPES:
            for desc in _descriptors(doc.get("manifests")):
                if not os.path.exists(self.paths.revision_link(name, desc)):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", {"digest": desc})
            return
        config = doc.get("config")
        if not isinstance(config, dict):
            raise RegistryError("MANIFEST_INVALID", {"reason": "config descriptor missing"})
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise RegistryError("MANIFEST_INVALID", {"reason": "layers missing"})
        local = [config] + [layer for layer in layers if not (isinstance(layer, dict) and layer.get("urls"))]
        for desc in _descriptors(local):
            if not self.has_blob(name, desc):
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", {"digest": desc})

    def delete_manifest(self, name: str, ref: str) -> None:
        """By tag: untag. By digest: drop the revision, every tag naming it and its referrer record."""
        digest = self.resolve(name, ref)
        if not is_digest(ref):
            _unlink(self.paths.tag(name, ref))
            return
        for tag in self.tags(name):
            path = self.paths.tag(name, tag)
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
                if f.read().decode().strip() == digest:
                    _unlink(path)
        with contextlib.suppress(FileNotFoundError, RegistryError), open(self.paths.blob(digest), "rb") as f:
            subject = _subject(_parse_manifest(f.read()))
            if subject:
                _unlink(f"{self.paths.referrers(name, subject)}/{digest.partition(':')[2]}")
        _unlink(self.paths.revision_link(name, digest))

    def tags(self, name: str) -> list[str]:
        check_name(name)
        try:
            return sorted(os.listdir(self.paths.tags(name)))
        except FileNotFoundError:
            if not self.repo_exists(name):
                raise RegistryError("NAME_UNKNOWN", {"name": name}) from None
            return []

    def referrers(self, name: str, subject: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
        check_name(name)
        check_digest(subject)
        d = self.paths.referrers(name, subject)
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.listdir(d)):
                with contextlib.suppress(FileNotFoundError, ValueError), open(f"{d}/{entry}", "rb") as f:
                    desc = json.load(f)
                    if artifact_type is None or desc.get("artifactType") == artifact_type:
                        out.append(desc)
        return out


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RegistryError("MANIFEST_INVALID", {"reason": f"invalid JSON: {exc}"}) from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise RegistryError("MANIFEST_INVALID", {"reason": "schemaVersion must be 2"})
    return doc


def _media_type(doc: dict[str, Any], content_type: str) -> str:
    """The manifest's own mediaType, else the request's Content-Type, else inferred (OCI allows it absent)."""
    declared = doc.get("mediaType")
    content_type = content_type.partition(";")[0].strip()
    if declared and content_type and content_type not in (declared, "application/json", "application/octet-stream"):
        raise RegistryError("MANIFEST_INVALID", {"reason": f"mediaType {declared} does not match {content_type}"})
    media_type = declared or (content_type if content_type in IMAGE_TYPES | INDEX_TYPES else None)
    if media_type is None:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type not in IMAGE_TYPES | INDEX_TYPES:
        raise RegistryError("MANIFEST_INVALID", {"reason": f"unsupported manifest type {media_type}"})
    return media_type


def _descriptors(items: Any) -> Iterator[str]:
    if not isinstance(items, list):
        raise RegistryError("MANIFEST_INVALID", {"reason": "descriptor list expected"})
    for item in items:
        if not isinstance(item, dict):
            raise RegistryError("MANIFEST_INVALID", {"reason": "descriptor expected"})
        yield check_digest(item.get("digest"), "MANIFEST_INVALID")


def _subject(doc: dict[str, Any]) -> str | None:
    subject = doc.get("subject")
    if subject is None:
        return None
    if not isinstance(subject, dict):
        raise RegistryError("MANIFEST_INVALID", {"reason": "subject must be a descriptor"})
    return check_digest(subject.get("digest"), "MANIFEST_INVALID")

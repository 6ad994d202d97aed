"""Push: upload an image's missing blobs (HEAD first, cross-repository mount when the registry has the
blob in another repository, else a monolithic or chunked upload), then its manifest.

Layers stored uncompressed (imported, loaded, committed) are pushed as gzip; the compressed digest is
remembered per diff id so the next push can skip both compressing and uploading.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from dockyard.distribution.client.metadata import DistributionMetadata
from dockyard.distribution.client.progress import Emit, LayerProgress, short, status
from dockyard.distribution.client.registry import Registry
from dockyard.image import manifest as mf
from dockyard.image.content import CHUNK
from dockyard.image.reference import Reference

_GZIP_TYPES = {mf.OCI_LAYER_GZIP, mf.DOCKER_LAYER_GZIP, mf.OCI_LAYER_ND_GZIP, mf.DOCKER_LAYER_FOREIGN}
_ZSTD_TYPES = {mf.OCI_LAYER_ZSTD, mf.OCI_LAYER_ND_ZSTD}
_PLAIN_TYPES = {mf.OCI_LAYER, mf.DOCKER_LAYER, mf.OCI_LAYER_ND}


@dataclass
class PushResult:
    tag: str
    digest: str
    size: int


@dataclass
class _Blob:
    """A blob to send: what it is and how to read it."""

    digest: str
    size: int
    compression: str  # "gzip", "zstd" or "" (uncompressed)
    open: Callable[[], Any]


class Pusher:
    def __init__(
        self,
        store: Any,
        registry: Registry,
        emit: Emit,
        *,
        metadata: DistributionMetadata | None = None,
        max_concurrent: int = 5,
        chunk_size: int = 0,
    ) -> None:
        self.store = store
        self.registry = registry
        self.emit = emit
        self.metadata = metadata
        self.max_concurrent = max(1, max_concurrent)
        self.chunk_size = chunk_size

    def push(self, ref: Reference) -> PushResult:
        """Push one tag; the image must be known locally under that reference."""
        from dockyard.image.store import LayerBlob

        assert ref.tag, "push needs a tag"
        image = self.store.resolve(str(ref))
        repo = ref.path
        layers = list(image.layers)
        for layer in reversed(layers):
            status(self.emit, "Preparing", short(layer.diff_id))
        for layer in list(reversed(layers))[self.max_concurrent :]:
            status(self.emit, "Waiting", short(layer.diff_id))
        with ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="push") as pool:
            sent = list(pool.map(lambda layer: self._push_layer(repo, layer), layers))
        config_bytes = self.store.content.read(image.id)
        config = _Blob(image.id, len(config_bytes), "", lambda: self.store.content.open(image.id))
        if not self.registry.blob_exists(repo, image.id, f"repository:{repo}:pull,push"):
            self._upload(repo, config, None)
        manifest, media_type = build_manifest(config, sent)
        digest = self.registry.put_manifest(repo, ref.tag, manifest, media_type)
        status(self.emit, f"{ref.tag}: digest: {digest} size: {len(manifest)}")
        self.emit({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(manifest)}})
        self.store.register(
            config_bytes,
            layer_blobs=[LayerBlob(x.blob, x.media_type) for x in layers],
            repo_digests=[f"{ref.name}@{digest}"],
        )
        return PushResult(ref.tag, digest, len(manifest))

    # -- layers --------------------------------------------------------------------------------------
    def _push_layer(self, repo: str, layer: Any) -> _Blob:
        layer_id = short(layer.diff_id)
        scope = f"repository:{repo}:pull,push"
        plain = layer.blob == layer.diff_id or layer.media_type in _PLAIN_TYPES
        if plain and self.metadata is not None and (known := self.metadata.compressed(layer.diff_id)):
            digest, size, _ = known
            if self.registry.blob_exists(repo, digest, scope):
                status(self.emit, "Layer already exists", layer_id)
                return _Blob(digest, size, "gzip", lambda: None)
        with self._blob_for(layer, plain) as blob:
            if self.registry.blob_exists(repo, blob.digest, scope):
                status(self.emit, "Layer already exists", layer_id)
            else:
                self._send(repo, blob, layer_id)
        if self.metadata is not None:
            self.metadata.add_source(blob.digest, self.registry.host, repo)
        return blob

    @contextmanager
    def _blob_for(self, layer: Any, plain: bool) -> Iterator[_Blob]:
        """The layer's stored blob, or a gzip copy of an uncompressed one in a temp file."""
        content = self.store.content
        if not plain:
            kind = "zstd" if layer.media_type in _ZSTD_TYPES else "gzip"
            yield _Blob(layer.blob, content.size(layer.blob), kind, lambda: content.open(layer.blob))
            return
        tmp = content.ingest_dir / f"push-{secrets.token_hex(8)}"
        try:
            digest, size = _gzip_to(content.open(layer.blob), tmp)
            if self.metadata is not None:
                self.metadata.set_compressed(layer.diff_id, digest, size, mf.DOCKER_LAYER_GZIP)
            yield _Blob(digest, size, "gzip", functools.partial(open, tmp, "rb"))
        finally:
            tmp.unlink(missing_ok=True)

    def _send(self, repo: str, blob: _Blob, layer_id: str) -> None:
        for source in self.metadata.sources(blob.digest, self.registry.host) if self.metadata else []:
            if source == repo:
                continue
            session = self.registry.mount_blob(repo, blob.digest, source)
            if session is None:
                status(self.emit, f"Mounted from {_familiar(self.registry.domain, source)}", layer_id)
                return
            self._upload(repo, blob, LayerProgress(self.emit, "Pushing", layer_id, blob.size), session)
            status(self.emit, "Pushed", layer_id)
            return
        self._upload(repo, blob, LayerProgress(self.emit, "Pushing", layer_id, blob.size))
        status(self.emit, "Pushed", layer_id)

    def _upload(self, repo: str, blob: _Blob, progress: LayerProgress | None, session: Any = None) -> None:
        session = session or self.registry.start_upload(repo)
        with blob.open() as source:
            self.registry.upload(repo, session, blob.digest, blob.size, source, progress, self.chunk_size)


def _familiar(domain: str, repo: str) -> str:
    return repo.removeprefix("library/") if domain == "docker.io" and repo.count("/") == 1 else repo


def _gzip_to(plain: BinaryIO, path: os.PathLike[str] | str) -> tuple[str, int]:
    """Compress a layer tar into `path`; returns the compressed blob's digest and size."""
    import hashlib

    from dockyard.image.compression import compressor

    class _Hashing:
        def __init__(self, out: BinaryIO) -> None:
            self.out, self.hasher, self.size = out, hashlib.sha256(), 0

        def write(self, data: bytes) -> int:
            self.hasher.update(data)
            self.size += len(data)
            return self.out.write(data)

        def flush(self) -> None:
            self.out.flush()

    with plain, open(path, "xb") as out:
        hashing = _Hashing(out)
        with compressor("gzip", hashing) as gz:  # type: ignore[arg-type]
            while chunk := plain.read(CHUNK):
                gz.write(chunk)
    return "sha256:" + hashing.hasher.hexdigest(), hashing.size


def build_manifest(config: _Blob, layers: list[_Blob]) -> tuple[bytes, str]:
    """Docker schema2 like docker pushes it, or OCI when a layer is zstd (schema2 has no zstd type)."""
    oci = any(layer.compression == "zstd" for layer in layers)
    if oci:
        media_type, config_type = mf.OCI_MANIFEST, mf.OCI_CONFIG
        layer_types = {"gzip": mf.OCI_LAYER_GZIP, "zstd": mf.OCI_LAYER_ZSTD, "": mf.OCI_LAYER}
    else:
        media_type, config_type = mf.DOCKER_MANIFEST, mf.DOCKER_CONFIG
        layer_types = {"gzip": mf.DOCKER_LAYER_GZIP, "": mf.DOCKER_LAYER}
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "size": config.size, "digest": config.digest},
        "layers": [
            {"mediaType": layer_types[layer.compression], "size": layer.size, "digest": layer.digest}
            for layer in layers
        ],
    }
    return json.dumps(doc, indent=3).encode(), media_type

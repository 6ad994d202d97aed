"""Pull: resolve a reference to a manifest (choosing a platform from an index), download the config
and the missing layers in parallel into the content store (each verified against its digest before it
is committed), then register the image, which unpacks and checks every layer's diff id.

Verified blobs stay in the content store even when the pull fails, so the next pull resumes with the
layers it already has; a blob that does not match its digest is never committed or unpacked.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dockyard.distribution.client.auth import AuthenticationFailed
from dockyard.distribution.client.metadata import DistributionMetadata
from dockyard.distribution.client.progress import Emit, LayerProgress, short, status
from dockyard.distribution.client.registry import Registry
from dockyard.errors import DigestMismatch, DockyardError, Forbidden, ImageNotFound, NotFound, Unauthorized
from dockyard.image import manifest as mf
from dockyard.image.content import sha256_digest
from dockyard.image.reference import Reference

ACCEPT = (mf.OCI_INDEX, mf.DOCKER_MANIFEST_LIST, mf.OCI_MANIFEST, mf.DOCKER_MANIFEST)
_CHUNK = 1 << 20


class PullCancelled(DockyardError):
    """Another layer failed: stop this download."""


@dataclass
class PullResult:
    image: Any  # dockyard.image.store.Image
    digest: str  # the digest the reference resolved to (an index's, for multi-platform images)
    reference: Reference
    up_to_date: bool


@dataclass
class Resolved:
    manifest: mf.Manifest
    digest: str  # of the document the reference names
    manifest_digest: str  # of the platform's manifest


class Puller:
    """Pulls images of one registry into an ImageStore."""

    def __init__(
        self,
        store: Any,
        registry: Registry,
        emit: Emit,
        *,
        max_concurrent: int = 3,
        platform: mf.Platform | None = None,
        metadata: DistributionMetadata | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.emit = emit
        self.max_concurrent = max(1, max_concurrent)
        self.platform = platform
        self.metadata = metadata

    # -- resolution ----------------------------------------------------------------------------------
    def _fetch(self, repo: str, reference: str, expected: str | None) -> tuple[dict[str, Any], str, bytes]:
        document = self.registry.get_manifest(repo, reference, ACCEPT)
        if expected is not None and document.digest != expected:
            raise DigestMismatch(f"manifest verification failed for digest {expected}")
        doc = mf._load_json(document.data)
        return doc, document.digest, document.data

    def resolve(self, ref: Reference) -> Resolved:
        """The platform's manifest for a tag or digest, with docker's messages for missing or denied."""
        repo = ref.path
        try:
            doc, digest, _ = self._fetch(repo, ref.digest or ref.tag or "latest", ref.digest)
            manifest_digest = digest
            if mf.detect_media_type(doc) in mf.INDEX_TYPES:
                chosen = mf.parse_index(doc).select(self.platform)
                doc, manifest_digest, _ = self._fetch(repo, chosen.digest, chosen.digest)
            return Resolved(mf.parse_manifest(doc), digest, manifest_digest)
        except AuthenticationFailed:
            raise
        except NotFound as exc:
            raise NotFound(f"manifest for {ref.familiar()} not found: {exc.message}") from None
        except (Unauthorized, Forbidden) as exc:
            raise type(exc)(
                f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                f"require 'docker login': {exc.message}"
            ) from None

    def _config(self, repo: str, manifest: mf.Manifest) -> bytes:
        data = self.registry.get_blob(repo, manifest.config.digest)
        if sha256_digest(data) != manifest.config.digest:
            raise DigestMismatch(f"image config verification failed for digest {manifest.config.digest}")
        config = mf.parse_config(data)
        if self.platform is not None:
            actual = mf.Platform.from_dict(config)
            if actual is not None and not mf.platform_matches(actual, self.platform):
                raise NotFound(
                    f"image with reference was found but does not match the specified platform: "
                    f"wanted {self.platform}, actual: {actual}"
                )
        if len(config["rootfs"]["diff_ids"]) != len(manifest.layers):
            raise mf.ManifestError("the image config's diff ids do not match the manifest's layers")
        return data

    # -- pull ----------------------------------------------------------------------------------------
    def pull(self, ref: Reference) -> PullResult:
        from dockyard.image.store import LayerBlob

        status(
            self.emit,
            f"Pulling from {ref.path if ref.domain != 'docker.io' else ref.familiar_name}",
            ref.tag or ref.digest or "latest",
        )
        resolved = self.resolve(ref)
        manifest = resolved.manifest
        config_bytes = self._config(ref.path, manifest)
        image_id = sha256_digest(config_bytes)
        previous = self._current(ref)
        tags = [str(ref)] if ref.tag and not ref.digest else []
        digests = [f"{ref.name}@{resolved.digest}"]
        if self._have_image(image_id):
            blobs = [LayerBlob(layer.blob, layer.media_type) for layer in self.store.get(image_id).layers]
            image = self.store.register(config_bytes, layer_blobs=blobs, repo_tags=tags, repo_digests=digests)
        else:
            diff_ids = mf.parse_config(config_bytes)["rootfs"]["diff_ids"]
            blobs, missing = self._plan_layers(manifest, diff_ids)
            if self.metadata is not None:
                for desc in manifest.layers:
                    self.metadata.add_source(desc.digest, self.registry.host, ref.path)
            unpacked = self._download_and_unpack(ref.path, manifest, diff_ids, blobs, missing)
            try:
                image = self.store.register(config_bytes, layer_blobs=blobs, repo_tags=tags, repo_digests=digests)
            except BaseException:
                self.store.discard_unused_layers(reversed(unpacked))
                raise
        status(self.emit, f"Digest: {resolved.digest}")
        return PullResult(image, resolved.digest, ref, previous == image.id)

    def _current(self, ref: Reference) -> str | None:
        try:
            return str(self.store.resolve(str(ref)).id)
        except ImageNotFound:
            return None

    def _have_image(self, image_id: str) -> bool:
        try:
            self.store.get(image_id)
        except ImageNotFound:
            return False
        return True

    def _existing_layers(self) -> dict[str, Any]:
        """chain id → a LayerBlob some local image already unpacked it from."""
        from dockyard.image.store import LayerBlob

        found: dict[str, Any] = {}
        for image in self.store.list():
            for layer in image.layers:
                if self.store.content.exists(layer.blob):
                    found.setdefault(layer.chain_id, LayerBlob(layer.blob, layer.media_type))
        return found

    def _plan_layers(self, manifest: mf.Manifest, diff_ids: list[str]) -> tuple[list[Any], list[mf.Descriptor]]:
        """The blob of every layer, and the descriptors still to download (docker's first statuses)."""
        from dockyard.image.store import LayerBlob

        existing = self._existing_layers()
        blobs: list[Any] = []
        missing: list[mf.Descriptor] = []
        for desc, chain in zip(manifest.layers, mf.chain_ids(diff_ids), strict=True):
            if chain in existing and self.store.snapshotter.has_layer(chain):
                status(self.emit, "Already exists", short(desc.digest))
                blobs.append(existing[chain])
                continue
            blobs.append(LayerBlob(desc.digest, desc.media_type))
            if self.store.content.exists(desc.digest):
                status(self.emit, "Download complete", short(desc.digest))  # verified by an earlier pull
            elif desc.digest not in {m.digest for m in missing}:
                missing.append(desc)
        for desc in missing:
            status(self.emit, "Pulling fs layer", short(desc.digest))
        for desc in missing[self.max_concurrent :]:
            status(self.emit, "Waiting", short(desc.digest))
        return blobs, missing

    def _download_and_unpack(
        self, repo: str, manifest: mf.Manifest, diff_ids: list[str], blobs: list[Any], missing: list[mf.Descriptor]
    ) -> list[str]:
        """Download concurrently and unpack in order as soon as each layer (and those below it) is
        there: extraction overlaps the remaining downloads. Returns the chain ids unpacked here; on
        failure nothing stays unpacked and the other downloads are cancelled."""
        cancel = threading.Event()
        unpacked: list[str] = []
        with ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="pull") as pool:
            futures = {desc.digest: pool.submit(self._download, repo, desc, cancel) for desc in missing}
            try:
                parent: str | None = None
                for blob, diff_id, chain in zip(blobs, diff_ids, mf.chain_ids(diff_ids), strict=True):
                    future = futures.get(blob.digest)
                    if future is not None:
                        future.result()
                    if not self.store.snapshotter.has_layer(chain):
                        status(self.emit, "Extracting", short(blob.digest))
                        self.store.unpack_layer(blob, diff_id, chain, parent)
                        unpacked.append(chain)
                        status(self.emit, "Pull complete", short(blob.digest))
                    parent = chain
            except BaseException:
                cancel.set()
                for future in futures.values():
                    future.cancel()
                self.store.discard_unused_layers(reversed(unpacked))
                raise
        return unpacked

    def _download(self, repo: str, desc: mf.Descriptor, cancel: threading.Event) -> None:
        """Downloads already running when another fails are finished: their blobs make the retry shorter."""
        if cancel.is_set():
            raise PullCancelled("pull cancelled")
        layer = short(desc.digest)
        progress = LayerProgress(self.emit, "Downloading", layer, desc.size)
        response = self.registry.open_blob(repo, desc.digest)
        try:
            reader = _BlobReader(response, progress)
            try:
                self.store.content.ingest(reader, expected=desc.digest, size=desc.size)  # type: ignore[arg-type]
            except DigestMismatch:
                raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}") from None
        finally:
            response.release_conn()
        status(self.emit, "Verifying Checksum", layer)
        status(self.emit, "Download complete", layer)


class _BlobReader:
    """Reads a blob response raw (no Content-Encoding decoding: the digest covers the stored bytes)."""

    def __init__(self, response: Any, progress: LayerProgress) -> None:
        self.response = response
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.response.read(_CHUNK if n is None or n < 0 else n, decode_content=False)
        if data:
            self.progress(len(data))
        return bytes(data)

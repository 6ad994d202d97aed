"""The image store: image records, the name → image index, and layer reference counting.

Blobs live in the content store, unpacked layers in the snapshotter (keyed by chain id, shared by
every image that has the same layer chain). Records are written atomically after their blobs and
layers exist, so a crash leaves at worst unreferenced blobs, never a record that points at nothing;
a record that does (disk loss, manual deletion) is dropped when the store opens.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.errors import Conflict, DigestMismatch, ImageNotFound, InvalidParameter, NotFound
from dockyard.image import manifest as mf
from dockyard.image import reference as refs
from dockyard.image.content import ContentStore, check_digest, sha256_digest
from dockyard.storage.base import Snapshotter
from dockyard.util.fs import read_json, write_json
from dockyard.util.ids import short_id
from dockyard.util.timefmt import ZERO_TIME, parse_rfc3339, rfc3339_nano

ContainerLookup = Callable[[str], "str | None"]

# The keys docker shows in an image's Config even when unset.
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
    "Labels": None,
}  # fmt: skip


@dataclass(frozen=True)
class LayerRecord:
    """One layer of an image: its uncompressed digest, chain id and the blob that holds it."""

    diff_id: str
    chain_id: str
    blob: str
    media_type: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"diff_id": self.diff_id, "chain_id": self.chain_id, "blob": self.blob,
                "media_type": self.media_type, "size": self.size}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerRecord:
        return cls(data["diff_id"], data["chain_id"], data["blob"], data["media_type"], int(data["size"]))


@dataclass(frozen=True)
class LayerBlob:
    """Where a layer's content is stored when it is not an uncompressed tar named by its diff id."""

    digest: str
    media_type: str


@dataclass
class Image:
    """A snapshot of one image as the store knows it."""

    id: str
    config: dict[str, Any]
    repo_tags: list[str]
    repo_digests: list[str]
    created: str
    size: int
    chain_id: str | None
    layer_chain_ids: list[str]
    layers: list[LayerRecord] = field(default_factory=list)
    parent: str = ""
    last_tag_time: str = ZERO_TIME

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def short_id(self) -> str:
        return short_id(self.id)


@dataclass
class _Record:
    id: str
    config: dict[str, Any]
    layers: list[LayerRecord]
    parent: str = ""
    last_tag_time: str = ZERO_TIME

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "layers": [layer.to_dict() for layer in self.layers],
                "parent": self.parent, "last_tag_time": self.last_tag_time}  # fmt: skip


def _open_decompressed(stream: BinaryIO) -> BinaryIO:
    from dockyard.image.compression import open_decompressed

    return open_decompressed(stream)


class _HashingReader:
    """Passes reads through while hashing, so a layer's diff id is checked as it is unpacked."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hasher = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.hasher.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.hasher.hexdigest()


class ImageStore:
    """Images of one data root. Thread-safe; every mutation is persisted before it returns."""

    def __init__(self, root: str | os.PathLike[str], snapshotter: Snapshotter) -> None:
        self.root = Path(root)
        self.snapshotter = snapshotter
        self.content = ContentStore(self.root / "content")
        self.image_dir = self.root / "image"
        self.records_dir = self.image_dir / "images"
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self.repositories_file = self.image_dir / "repositories.json"
        self._lock = threading.RLock()
        self._records: dict[str, _Record] = {}
        self._refs: dict[str, str] = {}  # normalised reference string → image id
        self._restore()

    # -- restore -------------------------------------------------------------------------------------
    def _restore(self) -> None:
        dropped: list[_Record] = []
        for path in sorted(self.records_dir.glob("*.json")):
            record = self._load_record(path)
            if record is None:
                continue
            if self._blobs_missing(record):
                dropped.append(record)
                path.unlink(missing_ok=True)
            else:
                self._records[record.id] = record
        for record in dropped:
            self._release_layers(record, keep_layers=False)
            self.content.delete(record.id)
        self._load_refs()
        for record in self._records.values():
            self._ensure_unpacked(record.layers)

    def _load_record(self, path: Path) -> _Record | None:
        try:
            data = read_json(path)
            image_id = data["id"]
            if path.stem != check_digest(image_id):
                return None
            config = json.loads(self.content.read(image_id)) if self.content.exists(image_id) else {}
            layers = [LayerRecord.from_dict(layer) for layer in data["layers"]]
            for layer in layers:
                check_digest(layer.blob)
                check_digest(layer.chain_id)
            return _Record(image_id, config, layers, data.get("parent", ""),
                           data.get("last_tag_time", ZERO_TIME))  # fmt: skip
        except (ValueError, KeyError, TypeError, InvalidParameter):
            path.unlink(missing_ok=True)  # a torn or foreign file cannot describe an image
            return None

    def _blobs_missing(self, record: _Record) -> bool:
        if not self.content.exists(record.id):
            return True
        return any(not self.content.exists(layer.blob) for layer in record.layers)

    def _load_refs(self) -> None:
        data = read_json(self.repositories_file, default={}) or {}
        changed = False
        for repo in (data.get("Repositories") or {}).values():
            for ref, image_id in repo.items():
                if image_id in self._records:
                    self._refs[str(refs.parse_normalized(ref))] = image_id
                else:
                    changed = True
        if changed:
            self._save_refs()

    def _save_refs(self) -> None:
        repos: dict[str, dict[str, str]] = {}
        for ref, image_id in self._refs.items():
            parsed = refs.parse_normalized(ref)
            repos.setdefault(parsed.familiar_name, {})[parsed.familiar()] = image_id
        write_json(self.repositories_file, {"Repositories": repos})

    def _save_record(self, record: _Record) -> None:
        write_json(self.records_dir / f"{check_digest(record.id)}.json", record.to_dict())

    # -- layers --------------------------------------------------------------------------------------
    def _users(self, match: Callable[[LayerRecord], bool], exclude: str | None) -> int:
        """How many images (other than `exclude`) have a layer for which `match` holds."""
        return sum(1 for r in self._records.values() if r.id != exclude and any(map(match, r.layers)))

    def _layer_users(self, chain_id: str, exclude: str | None = None) -> int:
        return self._users(lambda layer: layer.chain_id == chain_id, exclude)

    def _blob_users(self, blob: str, exclude: str | None = None) -> int:
        return self._users(lambda layer: layer.blob == blob, exclude)

    def _ensure_unpacked(self, layers: list[LayerRecord]) -> list[str]:
        """Unpack the layers the snapshotter lacks (bottom up); returns the chain ids it added."""
        added: list[str] = []
        parent: str | None = None
        for layer in layers:
            if not self.snapshotter.has_layer(layer.chain_id):
                self._apply(layer, parent)
                added.append(layer.chain_id)
            parent = layer.chain_id
        return added

    def _apply(self, layer: LayerRecord, parent: str | None) -> int:
        with self.content.open(layer.blob) as raw:
            if layer.blob == layer.diff_id:  # already verified by the content store
                return self.snapshotter.apply_layer(layer.chain_id, parent, raw)
            reader = _HashingReader(_open_decompressed(raw))
            size = self.snapshotter.apply_layer(layer.chain_id, parent, reader)  # type: ignore[arg-type]
            if reader.drain() != layer.diff_id:
                self.snapshotter.remove_layer(layer.chain_id)
                raise DigestMismatch(f"layer {layer.blob} does not match diff id {layer.diff_id}")
            return size

    def unpack_layer(self, blob: LayerBlob, diff_id: str, chain_id: str, parent: str | None) -> int:
        """Unpack one layer ahead of `register`, verified against its diff id, so that a pull can
        extract each layer while the next ones are still downloading."""
        if self.snapshotter.has_layer(chain_id):
            return self.snapshotter.layer_size(chain_id)
        return self._apply(LayerRecord(diff_id, chain_id, blob.digest, blob.media_type, 0), parent)

    def discard_unused_layers(self, chain_ids: Iterable[str]) -> None:
        """Remove unpacked layers no image uses (a pull that failed after unpacking some)."""
        with self._lock:
            for chain in chain_ids:
                if self._layer_users(chain) == 0 and self.snapshotter.has_layer(chain):
                    self.snapshotter.remove_layer(chain)

    def _release_layers(self, record: _Record, keep_layers: bool) -> list[str]:
        """Remove the layers and blobs only `record` used; returns the removed chain ids (top first)."""
        removed: list[str] = []
        if keep_layers:
            return removed
        for layer in reversed(record.layers):
            if self._layer_users(layer.chain_id, exclude=record.id) == 0:
                if self.snapshotter.has_layer(layer.chain_id):
                    self.snapshotter.remove_layer(layer.chain_id)
                removed.append(layer.chain_id)
            if self._blob_users(layer.blob, exclude=record.id) == 0:
                self.content.delete(layer.blob)
        return removed

    def ingest_layer(self, plain_tar: BinaryIO, expected_diff_id: str | None = None) -> str:
        """Store an uncompressed layer tar as a blob; its digest is the layer's diff id."""
        digest, _ = self.content.ingest(plain_tar, expected_diff_id)
        return digest

    # -- registering images --------------------------------------------------------------------------
    def register(
        self,
        config_bytes: bytes,
        *,
        layer_blobs: list[LayerBlob] | None = None,
        parent: str = "",
        repo_tags: Iterable[str] = (),
        repo_digests: Iterable[str] = (),
    ) -> Image:
        """Record an image whose layer blobs are already in the content store.

        Without `layer_blobs` each layer is the uncompressed tar blob named by its diff id.
        The layers are unpacked first, then the config and the record are written."""
        config = mf.parse_config(config_bytes)
        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        if layer_blobs is None:
            layer_blobs = [LayerBlob(d, mf.OCI_LAYER) for d in diff_ids]
        if len(layer_blobs) != len(diff_ids):
            raise InvalidParameter("number of layers does not match the image config's diff ids")
        for blob in layer_blobs:
            if not self.content.exists(blob.digest):
                raise NotFound(f"layer blob {blob.digest} is not in the content store")
        with self._lock:
            image_id, _ = self.content.ingest_bytes(config_bytes)
            record = self._records.get(image_id) or self._new_record(image_id, config, diff_ids, layer_blobs, parent)
            for ref in repo_tags:
                self._set_ref(record, refs.parse_docker_ref(ref))
            for ref in repo_digests:
                self._set_ref(record, refs.parse_normalized(ref))
            return self._image(record)

    def _new_record(
        self, image_id: str, config: dict[str, Any], diff_ids: list[str], blobs: list[LayerBlob], parent: str
    ) -> _Record:
        layers: list[LayerRecord] = []
        added: list[str] = []
        try:
            below: str | None = None
            for diff_id, chain, blob in zip(diff_ids, mf.chain_ids(diff_ids), blobs, strict=True):
                layer = LayerRecord(diff_id, chain, blob.digest, blob.media_type, 0)
                if self.snapshotter.has_layer(chain):
                    size = self.snapshotter.layer_size(chain)
                else:
                    size = self._apply(layer, below)
                    added.append(chain)
                layers.append(LayerRecord(diff_id, chain, blob.digest, blob.media_type, size))
                below = chain
            record = _Record(image_id, config, layers, parent if parent in self._records else "")
            self._save_record(record)
        except BaseException:
            for chain in reversed(added):
                self.snapshotter.remove_layer(chain)
            if self._blob_users(image_id) == 0:
                self.content.delete(image_id)
            raise
        self._records[image_id] = record
        return record

    def import_tar(
        self,
        stream: BinaryIO,
        *,
        repo_tag: str | None = None,
        changes: dict[str, Any] | None = None,
        message: str = "",
        platform: str | None = None,
        source: str = "-",
    ) -> Image:
        """`docker import`: the (optionally compressed) tar becomes the image's only layer."""
        target = mf.Platform.parse(platform) if platform else mf.host_platform()
        if repo_tag:
            refs.parse_docker_ref(repo_tag)  # refuse a bad name before doing any work
        diff_id = self.ingest_layer(_open_decompressed(stream))
        created = rfc3339_nano()
        comment = message or f"Imported from {source}"
        config: dict[str, Any] = {
            "architecture": target.architecture,
            "config": dict(changes or {}),
            "created": created,
            "history": [{"created": created, "comment": comment}],
            "os": target.os,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        if target.variant:
            config["variant"] = target.variant
        if message:
            config["comment"] = message
        return self._register_new_blobs(config, [diff_id], repo_tag)

    def create_image(
        self,
        config: dict[str, Any],
        parent: Image | None,
        layer_tar: BinaryIO | None,
        *,
        repo_tag: str | None = None,
        comment: str = "",
        author: str = "",
        created_by: str = "",
    ) -> Image:
        """A new image on top of `parent` (commit/build): `config` is the runtime Config section,
        `layer_tar` an uncompressed diff tar or None for a metadata-only step."""
        if repo_tag:
            refs.parse_docker_ref(repo_tag)
        base = copy.deepcopy(parent.config) if parent else {}
        host = mf.host_platform()
        diff_ids = list(base.get("rootfs", {}).get("diff_ids", []))
        new_blobs: list[str] = []
        if layer_tar is not None:
            diff_id = self.ingest_layer(layer_tar)
            diff_ids.append(diff_id)
            new_blobs.append(diff_id)
        created = rfc3339_nano()
        entry: dict[str, Any] = {"created": created}
        for key, value in (("author", author), ("created_by", created_by), ("comment", comment)):
            if value:
                entry[key] = value
        if layer_tar is None:
            entry["empty_layer"] = True
        image_config: dict[str, Any] = {
            "architecture": base.get("architecture", host.architecture),
            "config": config,
            "created": created,
            "history": [*base.get("history", []), entry],
            "os": base.get("os", host.os),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        for key in ("variant", "os.version"):
            if key in base:
                image_config[key] = base[key]
        if author:
            image_config["author"] = author
        if comment:
            image_config["comment"] = comment
        blobs = [LayerBlob(lr.blob, lr.media_type) for lr in (parent.layers if parent else [])]
        blobs += [LayerBlob(d, mf.OCI_LAYER) for d in new_blobs]
        return self._register_new_blobs(image_config, new_blobs, repo_tag, blobs, parent.id if parent else "")

    def _register_new_blobs(
        self,
        config: dict[str, Any],
        new_blobs: list[str],
        repo_tag: str | None,
        layer_blobs: list[LayerBlob] | None = None,
        parent: str = "",
    ) -> Image:
        """register(), dropping the blobs this call ingested if it fails."""
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        try:
            return self.register(config_bytes, layer_blobs=layer_blobs, parent=parent,
                                 repo_tags=[repo_tag] if repo_tag else [])  # fmt: skip
        except BaseException:
            with self._lock:
                for blob in new_blobs:
                    if self._blob_users(blob) == 0:
                        self.content.delete(blob)
            raise

    # -- names ---------------------------------------------------------------------------------------
    def _set_ref(self, record: _Record, ref: refs.Reference) -> None:
        self._refs[str(ref)] = record.id
        record.last_tag_time = rfc3339_nano()
        self._save_record(record)
        self._save_refs()

    def tag(self, image: Image | str, ref: str) -> Image:
        """Point `ref` (default tag latest) at the image, moving it from any other image."""
        with self._lock:
            record = self._record(image)
            parsed = refs.parse_normalized(ref)
            if parsed.digest is not None:
                raise InvalidParameter("refusing to create a tag with a digest reference")
            if parsed.familiar_name == "sha256" and parsed.tag and len(parsed.tag) == 64:
                raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
            self._set_ref(record, parsed.with_default_tag())
            return self._image(record)

    def references_by_name(self, name: str) -> list[tuple[refs.Reference, str]]:
        """Every (reference, image id) of one repository (`busybox` → all busybox tags/digests)."""
        wanted = refs.parse_normalized(name).name
        with self._lock:
            found = [(refs.parse_normalized(r), i) for r, i in self._refs.items()]
        return sorted(((r, i) for r, i in found if r.name == wanted), key=lambda pair: str(pair[0]))

    def _refs_of(self, image_id: str) -> list[refs.Reference]:
        return [refs.parse_normalized(r) for r, i in self._refs.items() if i == image_id]

    # -- lookup --------------------------------------------------------------------------------------
    def _record(self, image: Image | str) -> _Record:
        image_id = image.id if isinstance(image, Image) else self.resolve(image).id
        try:
            return self._records[image_id]
        except KeyError:
            raise ImageNotFound(image_id) from None

    def _resolve_id(self, ref_or_id: str) -> str:
        parsed = refs.parse_any(ref_or_id)
        if isinstance(parsed, str):
            if parsed in self._records:
                return parsed
            raise ImageNotFound(ref_or_id)
        key = parsed if parsed.digest else parsed.with_default_tag()
        if parsed.digest and parsed.tag:
            key = refs.Reference(parsed.domain, parsed.path, None, parsed.digest)
        image_id = self._refs.get(str(key))
        if image_id is not None:
            return image_id
        prefix = ref_or_id.removeprefix("sha256:")
        if prefix and all(c in "0123456789abcdef" for c in prefix):
            matches = [i for i in self._records if i.removeprefix("sha256:").startswith(prefix)]
            if len(matches) == 1:
                return matches[0]
        raise ImageNotFound(key.familiar() if not parsed.digest else ref_or_id)

    def resolve(self, ref_or_id: str) -> Image:
        """Find an image by name[:tag], name@digest, full or `sha256:` id, or a unique id prefix."""
        with self._lock:
            return self._image(self._records[self._resolve_id(ref_or_id)])

    def get(self, image_id: str) -> Image:
        with self._lock:
            try:
                return self._image(self._records[image_id])
            except KeyError:
                raise ImageNotFound(image_id) from None

    def list(self) -> list[Image]:
        with self._lock:
            return [self._image(r) for r in self._records.values()]

    def children(self, image_id: str) -> list[str]:
        with self._lock:
            return [r.id for r in self._records.values() if r.parent == image_id]

    def _image(self, record: _Record) -> Image:
        tags, digests = [], []
        for ref in self._refs_of(record.id):
            (digests if ref.digest else tags).append(ref.familiar())
        chains = [layer.chain_id for layer in record.layers]
        return Image(
            id=record.id,
            config=record.config,
            repo_tags=sorted(tags),
            repo_digests=sorted(digests),
            created=record.config.get("created") or ZERO_TIME,
            size=sum(layer.size for layer in record.layers),
            chain_id=chains[-1] if chains else None,
            layer_chain_ids=chains,
            layers=list(record.layers),
            parent=record.parent,
            last_tag_time=record.last_tag_time,
        )

    # -- delete --------------------------------------------------------------------------------------
    def delete(
        self,
        ref_or_id: str,
        *,
        force: bool = False,
        prune: bool = True,
        in_use: ContainerLookup | None = None,
        running: ContainerLookup | None = None,
    ) -> list[dict[str, str]]:
        """`docker rmi` with docker's rules and response items.

        `in_use(image_id)` names a container (any state) created from the image, `running(image_id)`
        a running one; both default to "none"."""
        in_use = in_use or (lambda _id: None)
        running = running or (lambda _id: None)
        with self._lock:
            image_id = self._resolve_id(ref_or_id)
            records: list[dict[str, str]] = []
            if not _is_id_prefix(image_id, ref_or_id):
                if not self._untag(ref_or_id, image_id, force, in_use, records):
                    return records
                self._delete_helper(image_id, records, force, prune, True, in_use, running)
                return records
            image_refs = self._refs_of(image_id)
            if _is_single_reference(image_refs):
                conflict = self._conflict(image_id, True, not force, in_use, running, check_refs=False)
                if conflict:
                    raise conflict
                self._untag_all(image_id, records)
            self._delete_helper(image_id, records, force, prune, False, in_use, running)
            return records

    def _untag(
        self,
        ref_or_id: str,
        image_id: str,
        force: bool,
        in_use: ContainerLookup,
        records: list[dict[str, str]],
    ) -> bool:
        """Remove a name; returns True when the image has no names left (so deletion is attempted)."""
        if not force and _is_single_reference(self._refs_of(image_id)):
            container = in_use(image_id)
            if container:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref_or_id}" (must force) - container '
                    f"{short_id(container)} is using its referenced image {short_id(image_id)}"
                )
        parsed = refs.parse_normalized(ref_or_id)
        if parsed.digest and parsed.tag:
            parsed = refs.Reference(parsed.domain, parsed.path, None, parsed.digest)
        parsed = parsed.with_default_tag()
        self._refs.pop(str(parsed), None)
        records.append({"Untagged": parsed.familiar()})
        remaining = self._refs_of(image_id)
        if not parsed.digest and not any(r.name == parsed.name and not r.digest for r in remaining):
            for ref in remaining:
                if ref.digest and ref.name == parsed.name:
                    self._refs.pop(str(ref), None)
                    records.append({"Untagged": ref.familiar()})
        self._save_refs()
        return not self._refs_of(image_id)

    def _untag_all(self, image_id: str, records: list[dict[str, str]]) -> None:
        for ref in self._refs_of(image_id):
            self._refs.pop(str(ref), None)
            records.append({"Untagged": ref.familiar()})
        self._save_refs()

    def _conflict(
        self,
        image_id: str,
        hard: bool,
        soft: bool,
        in_use: ContainerLookup,
        running: ContainerLookup,
        check_refs: bool = True,
    ) -> _DeleteConflict | None:
        if hard and self.children(image_id):
            return _DeleteConflict(image_id, True, False, "image has dependent child images")
        if hard and (container := running(image_id)):
            return _DeleteConflict(
                image_id, True, True, f"image is being used by running container {short_id(container)}"
            )
        if soft and check_refs and self._refs_of(image_id):
            return _DeleteConflict(image_id, False, False, "image is referenced in multiple repositories")
        if soft and (container := in_use(image_id)):
            return _DeleteConflict(
                image_id, False, True, f"image is being used by stopped container {short_id(container)}"
            )
        return None

    def _delete_helper(
        self,
        image_id: str,
        records: list[dict[str, str]],
        force: bool,
        prune: bool,
        quiet: bool,
        in_use: ContainerLookup,
        running: ContainerLookup,
    ) -> None:
        conflict = self._conflict(image_id, True, not force, in_use, running)
        if conflict is not None:
            dangling = not self._refs_of(image_id) and not self.children(image_id)
            if quiet and (not dangling or conflict.used):
                return
            raise conflict
        record = self._records[image_id]
        if self._refs_of(image_id):
            self._untag_all(image_id, records)
        keep_layers = in_use(image_id) is not None  # a (forced) container still needs the layers
        (self.records_dir / f"{check_digest(image_id)}.json").unlink(missing_ok=True)
        del self._records[image_id]
        removed = self._release_layers(record, keep_layers)
        self.content.delete(image_id)
        records.append({"Deleted": image_id})
        records.extend({"Deleted": chain} for chain in removed)
        if prune and record.parent in self._records:
            self._delete_helper(record.parent, records, False, True, True, in_use, running)

    # -- API shapes ----------------------------------------------------------------------------------
    def inspect(self, image: Image | str) -> dict[str, Any]:
        """docker's ImageInspect JSON."""
        img = image if isinstance(image, Image) else self.resolve(image)
        cfg = img.config
        out: dict[str, Any] = {
            "Id": img.id,
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": img.parent,
            "Comment": cfg.get("comment", ""),
            "Created": img.created,
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": {**_CONFIG_DEFAULTS, **(cfg.get("config") or {})},
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": img.size,
            "GraphDriver": {"Name": self.snapshotter.name, "Data": None},
            "RootFS": {"Type": "layers", "Layers": img.diff_ids},
            "Metadata": {"LastTagTime": img.last_tag_time},
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        return out

    def summary(self, image: Image) -> dict[str, Any]:
        """One item of GET /images/json."""
        return {
            "Containers": -1,
            "Created": int(parse_rfc3339(image.created)),
            "Id": image.id,
            "Labels": (image.config.get("config") or {}).get("Labels") or {},
            "ParentId": image.parent,
            "RepoDigests": image.repo_digests,
            "RepoTags": image.repo_tags,
            "SharedSize": -1,
            "Size": image.size,
        }

    def history(self, image: Image | str) -> list[dict[str, Any]]:
        """`docker history`: newest first; entries not matching a local image get id <missing>."""
        with self._lock:
            img = image if isinstance(image, Image) else self.resolve(image)
            items: list[dict[str, Any]] = []
            layer_index = 0
            for entry in img.config.get("history") or []:
                size = 0
                if not entry.get("empty_layer") and layer_index < len(img.layers):
                    size = img.layers[layer_index].size
                    layer_index += 1
                items.insert(0, {
                    "Id": "<missing>",
                    "Created": int(parse_rfc3339(entry.get("created") or "")),
                    "CreatedBy": entry.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": entry.get("comment", ""),
                })  # fmt: skip
            current: _Record | None = self._records.get(img.id)
            for item in items:
                if current is None:
                    break
                item["Id"] = current.id
                tags = [r.familiar() for r in self._refs_of(current.id) if r.tag and not r.digest]
                item["Tags"] = sorted(tags) or None
                current = self._records.get(current.parent) if current.parent else None
            return items


class _DeleteConflict(Conflict):
    def __init__(self, image_id: str, hard: bool, used: bool, message: str) -> None:
        how = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {short_id(image_id)} ({how}) - {message}")
        self.hard = hard
        self.used = used


def _is_id_prefix(image_id: str, candidate: str) -> bool:
    return image_id.startswith(candidate) or image_id.removeprefix("sha256:").startswith(candidate)


def _is_single_reference(image_refs: list[refs.Reference]) -> bool:
    """All names are in one repository with at most one tag (docker's isSingleReference)."""
    if len(image_refs) <= 1:
        return len(image_refs) == 1
    single: refs.Reference | None = None
    canonical: set[str] = set()
    for ref in image_refs:
        if ref.digest:
            canonical.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    single = single or image_refs[0]
    return len(canonical) == 1 and single.name in canonical


__all__ = ["Image", "ImageStore", "LayerBlob", "LayerRecord", "sha256_digest"]

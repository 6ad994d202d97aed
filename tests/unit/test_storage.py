"""Snapshotters on real mounts: a 3-layer chain with whiteouts, container changes, diff round trip."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.layer import LayerError
from dockyard.storage import is_mountpoint, open_snapshotter, unmount
from dockyard.storage.overlay import OverlaySnapshotter
from dockyard.storage.vfs import VfsSnapshotter
from tests.helpers.rootfs import busybox_rootfs_tar, tar_bytes


def chain_id(n: int) -> str:
    return "sha256:" + hashlib.sha256(f"layer-{n}".encode()).hexdigest()


def f(name: str, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, 1_600_000_000
    return info, data


def d(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
    return info, None


LAYER2 = [d("etc"), f("etc/.wh.group"), d("data"), f("data/.wh..wh..opq"), f("data/c", b"C")]
LAYER3 = [d("etc"), f("etc/hostname", b"box\n"), f("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]


def view(root: Path) -> dict[str, object]:
    """A merged view: relative path -> file content, link target or 'dir'."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = "dir"
        elif stat.S_ISCHR(path.lstat().st_mode):
            out[rel] = "chardev"
        else:
            out[rel] = path.read_bytes()
    return out


@pytest.fixture
def mounts():
    """Targets to unmount at teardown, whatever happens in the test."""
    targets: list[str] = []
    yield targets
    for target in reversed(targets):
        unmount(target)


@pytest.fixture(params=["overlay", "vfs"])
def snapshotter(request, tmp_path):
    return open_snapshotter(str(tmp_path / "storage"), request.param)


@pytest.fixture
def image(snapshotter, tmp_path):
    """busybox rootfs + data/a,b, then LAYER2, then LAYER3; returns the top chain id."""
    base_tar = busybox_rootfs_tar(tmp_path / "base.tar", tmp_path / "work")
    with tarfile.open(base_tar, "a") as tar:
        for name, data in (("data/a", b"A"), ("data/b", b"B")):
            info, payload = f(name, data)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with open(base_tar, "rb") as stream:
        assert snapshotter.apply_layer(chain_id(1), None, stream) > 1_000_000  # busybox itself
    snapshotter.apply_layer(chain_id(2), chain_id(1), io.BytesIO(tar_bytes(LAYER2)))
    size3 = snapshotter.apply_layer(chain_id(3), chain_id(2), io.BytesIO(tar_bytes(LAYER3)))
    assert size3 == snapshotter.layer_size(chain_id(3)) == len(b"box\n") + len(LAYER3[2][1])
    return chain_id(3)


def mount_snapshot(snapshotter, key, parent, tmp_path, mounts, readonly=False) -> Path:
    snapshotter.prepare(key, parent)
    target = tmp_path / f"mnt-{key}"
    target.mkdir()
    snapshotter.mount(key, str(target), readonly=readonly)
    mounts.append(str(target))
    return target


def test_layer_chain_merged_view(snapshotter, image, tmp_path, mounts):
    root = mount_snapshot(snapshotter, "c1", image, tmp_path, mounts)
    assert is_mountpoint(str(root))
    assert (root / "bin/busybox").is_file()
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert not (root / "etc/group").exists()  # deleted by layer 2
    assert sorted(p.name for p in (root / "data").iterdir()) == ["c"]  # layer 2 made data opaque
    assert (root / "etc/hostname").read_text() == "box\n"
    assert (root / "etc/passwd").read_text().startswith("root:x:0:0::")
    assert (root / "home/app").stat().st_uid == 1000
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777


def test_container_changes_and_diff_round_trip(snapshotter, image, tmp_path, mounts):
    root = mount_snapshot(snapshotter, "c1", image, tmp_path, mounts)
    (root / "etc/passwd").unlink()
    (root / "new.txt").write_text("hello\n")
    (root / "etc/motd").write_text("hi\n")
    expected = view(root)
    changes = {(c.kind, c.path) for c in snapshotter.changes("c1")}
    assert {(2, "/etc/passwd"), (1, "/new.txt"), (1, "/etc/motd"), (0, "/etc")} <= changes
    assert not any(path.startswith("/bin") for _, path in changes)
    assert snapshotter.snapshot_size("c1") == len("hello\n") + len("hi\n")

    out = io.BytesIO()
    snapshotter.write_diff("c1", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert "etc/.wh.passwd" in names and "new.txt" in names and "etc/motd" in names

    out.seek(0)
    snapshotter.apply_layer(chain_id(4), image, out)
    again = mount_snapshot(snapshotter, "c2", chain_id(4), tmp_path, mounts, readonly=True)
    assert view(again) == expected
    with pytest.raises(OSError):
        (again / "x").write_text("read-only")


def test_empty_image_mounts(snapshotter, tmp_path, mounts):
    root = mount_snapshot(snapshotter, "empty", None, tmp_path, mounts)
    assert list(root.iterdir()) == []
    (root / "f").write_text("x")
    assert [(c.kind, c.path) for c in snapshotter.changes("empty")] == [(1, "/f")]


def test_remove_refuses_while_mounted_and_is_idempotent(snapshotter, image, tmp_path, mounts):
    root = mount_snapshot(snapshotter, "c1", image, tmp_path, mounts)
    with pytest.raises(Conflict, match="mounted"):
        snapshotter.remove("c1")
    with pytest.raises(Conflict, match="in use"):
        snapshotter.remove_layer(image)
    snapshotter.unmount(str(root))
    snapshotter.unmount(str(root))  # idempotent
    snapshotter.remove("c1")
    snapshotter.remove("c1")
    with pytest.raises(NotFound):
        snapshotter.changes("c1")
    with pytest.raises(Conflict, match="in use"):
        snapshotter.remove_layer(chain_id(2))  # layer 3 builds on it
    snapshotter.remove_layer(image)
    snapshotter.remove_layer(image)
    assert not snapshotter.has_layer(image) and snapshotter.has_layer(chain_id(2))


def test_failed_apply_leaves_nothing(snapshotter, tmp_path):
    hostile = tar_bytes([f("ok", b"x"), f("../escape", b"x")])
    with pytest.raises(LayerError):
        snapshotter.apply_layer(chain_id(9), None, io.BytesIO(hostile))
    assert not snapshotter.has_layer(chain_id(9))
    assert os.listdir(snapshotter.layers_dir) == []
    if isinstance(snapshotter, OverlaySnapshotter):
        assert os.listdir(snapshotter.links_dir) == []
    assert not (tmp_path / "escape").exists()


def test_invalid_names_and_conflicts(snapshotter, tmp_path):
    with pytest.raises(InvalidParameter):
        snapshotter.prepare("../evil", None)
    with pytest.raises(InvalidParameter):
        snapshotter.apply_layer("sha256:../../x", None, io.BytesIO(b""))
    with pytest.raises(NotFound):
        snapshotter.prepare("c1", chain_id(7))
    snapshotter.prepare("c1", None)
    with pytest.raises(Conflict):
        snapshotter.prepare("c1", None)
    assert snapshotter.apply_layer(chain_id(5), None, io.BytesIO(tar_bytes([f("a", b"1")]))) == 1
    assert snapshotter.apply_layer(chain_id(5), None, io.BytesIO(b"ignored")) == 1  # already there


def test_leftovers_are_swept_at_open(tmp_path):
    storage = tmp_path / "storage"
    first = open_snapshotter(str(storage), "overlay")
    (Path(first.layers_dir) / ".tmp-crashed").mkdir()
    os.symlink("../layers/nothing/diff", Path(first.links_dir) / "DANGLING")
    second = open_snapshotter(str(storage), "overlay")
    assert os.listdir(second.layers_dir) == [] and os.listdir(second.links_dir) == []


def test_many_layers_overflowing_the_mount_options_page(tmp_path, mounts):
    deep = tmp_path / ("x" * 100) / "storage"
    snap = open_snapshotter(str(deep), "overlay")
    parent = None
    for n in range(60):
        snap.apply_layer(chain_id(100 + n), parent, io.BytesIO(tar_bytes([f(f"file{n}", str(n).encode())])))
        parent = chain_id(100 + n)
    root = mount_snapshot(snap, "deep", parent, tmp_path, mounts)
    assert len(list(root.iterdir())) == 60
    assert (root / "file0").read_text() == "0" and (root / "file59").read_text() == "59"


def test_open_snapshotter_drivers(tmp_path):
    assert isinstance(open_snapshotter(str(tmp_path / "a")), OverlaySnapshotter)  # overlay works here
    assert isinstance(open_snapshotter(str(tmp_path / "b"), "vfs"), VfsSnapshotter)
    vfs_root = tmp_path / "c"
    open_snapshotter(str(vfs_root), "vfs").apply_layer(chain_id(1), None, io.BytesIO(tar_bytes([f("a")])))
    assert isinstance(open_snapshotter(str(vfs_root)), VfsSnapshotter)  # keeps the driver with layers
    with pytest.raises(InvalidParameter, match="unknown storage driver"):
        open_snapshotter(str(tmp_path / "d"), "btrfs")

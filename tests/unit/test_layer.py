"""Layer tar apply/diff: metadata, whiteouts in both modes, hostile tars, change detection, writing."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.image.layer import (
    LayerError,
    apply_tar,
    naive_changes,
    overlay_changes,
    write_changes_tar,
    write_tree_tar,
)
from dockyard.storage.base import Change
from tests.helpers.rootfs import tar_bytes

MTIME = 1_600_000_000


def entry(name: str, kind: bytes = tarfile.REGTYPE, **attrs) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = attrs.pop("mtime", MTIME)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def f(name: str, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, **attrs), data


def d(name: str, **attrs) -> tuple[tarfile.TarInfo, None]:
    return entry(name, tarfile.DIRTYPE, **attrs), None


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777), None


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, tarfile.LNKTYPE, linkname=target), None


def apply(members, dest: Path, whiteouts: str = "overlay") -> int:
    return apply_tar(io.BytesIO(tar_bytes(members)), str(dest), whiteouts=whiteouts)


def tree_state(root: Path) -> dict[str, tuple]:
    """Everything observable about a tree: type, mode, owner, content or link target."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        detail: object = None
        if stat.S_ISREG(st.st_mode):
            detail = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            detail = os.readlink(path)
        state[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, detail)
    return state


@pytest.fixture
def dirs(tmp_path: Path):
    """dest to unpack into, and a sentinel dir beside it that no layer may touch."""
    dest = tmp_path / "dest"
    sentinel = tmp_path / "sentinel"
    dest.mkdir()
    sentinel.mkdir()
    (sentinel / "secret").write_text("keep me\n")
    (sentinel / "victim").write_text("original\n")
    return dest, sentinel


# -- apply: metadata -----------------------------------------------------------------------------


def test_apply_preserves_metadata(dirs):
    dest, _ = dirs
    xattr = {"SCHILY.xattr.user.origin": "layer", "SCHILY.xattr.trusted.overlay.redirect": "/x"}
    size = apply(
        [
            d("usr", mtime=MTIME - 100),
            d("usr/bin", uid=7, gid=8, mode=0o750),
            f("usr/bin/suid", b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1000, pax_headers=xattr),
            sym("usr/bin/link", "suid"),
            hard("usr/bin/again", "usr/bin/suid"),
            (entry("usr/fifo", tarfile.FIFOTYPE, mode=0o600), None),
            (entry("usr/zero", mtime=MTIME + 0.5), b""),
        ],
        dest,
    )
    assert size == len(b"#!/bin/sh\n")
    suid = (dest / "usr/bin/suid").lstat()
    assert stat.S_IMODE(suid.st_mode) == 0o4755  # chmod after chown keeps setuid
    assert (suid.st_uid, suid.st_gid, suid.st_mtime) == (1000, 1000, MTIME)
    assert os.getxattr(dest / "usr/bin/suid", "user.origin") == b"layer"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "usr/bin/suid")
    assert os.readlink(dest / "usr/bin/link") == "suid"
    assert (dest / "usr/bin/again").lstat().st_ino == suid.st_ino
    assert stat.S_ISFIFO((dest / "usr/fifo").lstat().st_mode)
    bindir = (dest / "usr/bin").lstat()
    assert (bindir.st_uid, bindir.st_gid, stat.S_IMODE(bindir.st_mode)) == (7, 8, 0o750)
    # directory times are set last, so the children written inside do not bump them
    assert (dest / "usr").lstat().st_mtime == MTIME - 100
    assert (dest / "usr/zero").lstat().st_mtime_ns == (MTIME * 10**9) + 5 * 10**8


def test_apply_replaces_existing_entries(dirs):
    dest, _ = dirs
    apply([d("a"), f("a/x", b"1"), f("b", b"file")], dest, "delete")
    apply([f("a", b"now a file"), d("b"), f("b/y", b"2")], dest, "delete")
    assert (dest / "a").read_bytes() == b"now a file"
    assert (dest / "b/y").read_bytes() == b"2"


def test_large_file_streams(tmp_path):
    data = os.urandom(3 << 20)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert apply([f("big", data)], dest) == len(data)
    assert (dest / "big").read_bytes() == data


# -- apply: whiteouts ----------------------------------------------------------------------------


def test_overlay_whiteouts(dirs):
    dest, _ = dirs
    apply([d("etc"), f("etc/.wh.group"), d("data"), f("data/.wh..wh..opq"), f("data/new", b"n")], dest)
    st = (dest / "etc/group").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "data", "trusted.overlay.opaque") == b"y"
    assert (dest / "data/new").read_bytes() == b"n"
    assert not (dest / "etc/.wh.group").exists()


def test_delete_whiteouts_and_opaque(dirs):
    dest, _ = dirs
    apply(
        [
            d("etc"),
            f("etc/group", b"g"),
            f("etc/keep", b"k"),
            d("data"),
            d("data/sub"),
            f("data/sub/old", b"o"),
            f("data/old", b"o"),
        ],
        dest,
        "delete",
    )
    apply(
        [
            f("etc/.wh.group"),
            f("etc/.wh.missing"),
            f("data/same-layer", b"s"),  # written before the opaque marker: stays
            f("data/.wh..wh..opq"),
            d("data/sub"),
            f("data/sub/new", b"n"),
            f("gone/.wh.x"),  # whiteout under a missing parent: nothing to do
        ],
        dest,
        "delete",
    )
    assert not (dest / "etc/group").exists()
    assert (dest / "etc/keep").exists()
    assert sorted(p.name for p in (dest / "data").iterdir()) == ["same-layer", "sub"]
    assert [p.name for p in (dest / "data/sub").iterdir()] == ["new"]
    assert not (dest / "gone").exists()


def test_whiteout_after_same_layer_file_keeps_it(dirs):
    dest, _ = dirs
    apply([f("x", b"mine"), f(".wh.x")], dest, "delete")
    assert (dest / "x").read_bytes() == b"mine"


# -- apply: hostile tars -------------------------------------------------------------------------


def hostile_cases(sentinel: Path):
    s = str(sentinel)
    return {
        "dotdot": ([f("../sentinel/victim", b"pwned")], "escapes"),
        "dotdot-nested": ([d("a"), f("a/../../sentinel/victim", b"pwned")], "escapes"),
        "absolute": ([f(f"{s}/victim", b"pwned")], None),  # lands inside dest
        "abs-symlink-then-write": ([sym("esc", s), f("esc/victim", b"pwned")], None),
        "rel-symlink-then-write": ([sym("esc", "../../../../../../sentinel"), f("esc/victim", b"pwned")], None),
        "symlink-chain": ([sym("a", "b"), sym("b", s), f("a/victim", b"pwned")], None),
        "write-through-final-symlink": ([sym("victim", f"{s}/victim"), f("victim", b"pwned")], None),
        "hardlink-absolute": ([hard("h", f"{s}/secret")], "not found"),
        "hardlink-dotdot": ([hard("h", "../sentinel/secret")], "escapes"),
        "hardlink-via-symlinked-parent": ([sym("lnk", s), hard("h", "lnk/secret")], "not found"),
        "hardlink-to-symlink-then-write": ([sym("s", f"{s}/victim"), hard("h", "s"), f("h", b"pwned")], None),
        "device": (
            [
                (entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None),
                (entry("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1), None),
            ],
            None,
        ),
        "symlink-loop": ([sym("a", "b"), sym("b", "a"), f("a/x", b"x")], "symbolic links"),
        "file-as-parent": ([f("file", b"x"), f("file/child", b"y")], "not a directory"),
    }


@pytest.mark.parametrize("whiteouts", ["overlay", "delete"])
@pytest.mark.parametrize("case", list(hostile_cases(Path("/x"))))
def test_hostile_tar_stays_inside(dirs, case, whiteouts):
    dest, sentinel = dirs
    before = tree_state(sentinel.parent / "sentinel")
    passwd = Path("/etc/passwd").read_bytes()
    members, error = hostile_cases(sentinel)[case]
    if error:
        with pytest.raises(LayerError, match=error):
            apply(members, dest, whiteouts)
    else:
        apply(members, dest, whiteouts)
    assert tree_state(sentinel) == before
    assert Path("/etc/passwd").read_bytes() == passwd
    assert sorted(p.name for p in sentinel.parent.iterdir()) == ["dest", "sentinel"]
    if case == "device":
        assert not (dest / "dev/sda").exists() and not (dest / "dev/mem").exists()
    if case == "abs-symlink-then-write":  # resolved as if dest were /
        assert (dest / str(sentinel).lstrip("/") / "victim").read_bytes() == b"pwned"
    if case == "write-through-final-symlink":  # the symlink is replaced, not followed
        assert (dest / "victim").read_bytes() == b"pwned" and not (dest / "victim").is_symlink()


def test_corrupt_tars_raise_clear_errors(tmp_path):
    good = tar_bytes([f("a", b"x" * 5000), f("b", b"y" * 10)])
    for name, blob, match in [
        ("truncated-data", good[: 512 + 2000], "corrupt layer tar"),
        ("truncated-header", good[: 512 * 12 + 100], "corrupt layer tar"),
        ("bad-checksum", good[: 512 * 11] + b"\xff" * 512 + good[512 * 12 :], "corrupt layer tar"),
        ("garbage", b"not a tar at all" * 64, "corrupt layer tar"),
    ]:
        dest = tmp_path / name
        dest.mkdir()
        with pytest.raises(LayerError, match=match):
            apply_tar(io.BytesIO(blob), str(dest), whiteouts="delete")
    dest = tmp_path / "empty"
    dest.mkdir()
    assert apply_tar(io.BytesIO(b""), str(dest), whiteouts="overlay") == 0
    with pytest.raises(ValueError):
        apply_tar(io.BytesIO(b""), str(dest), whiteouts="copy")  # type: ignore[arg-type]


# -- changes -------------------------------------------------------------------------------------


def make_tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.utime(path, (MTIME, MTIME))


def test_naive_changes(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_tree(lower, {"etc/passwd": "root", "etc/group": "g", "old/a": "a", "same": "s", "kind": "file"})
    make_tree(upper, {"etc/passwd": "root2", "etc/group": "g", "new/b": "b", "same": "s"})
    (upper / "kind").mkdir()
    (upper / "kind/inner").write_text("i")
    for tree in (lower, upper):
        for p in (tree / "etc", tree):
            os.utime(p, (MTIME, MTIME))
    assert naive_changes(str(lower), str(upper)) == [
        Change(0, "/etc"),  # unchanged itself, but holds a change
        Change(0, "/etc/passwd"),
        Change(0, "/kind"),
        Change(1, "/kind/inner"),
        Change(1, "/new"),
        Change(1, "/new/b"),
        Change(2, "/old"),
    ]


def test_overlay_changes_with_lowers(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_tree(lower, {"etc/passwd": "root", "etc/group": "g", "data/x": "x", "data/y": "y"})
    make_tree(upper, {"etc/hostname": "h", "data/z": "z"})
    os.mknod(upper / "etc/group", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(upper / "data", "trusted.overlay.opaque", b"y")
    assert overlay_changes(str(upper), [str(lower)]) == [
        Change(0, "/data"),
        Change(2, "/data/x"),
        Change(2, "/data/y"),
        Change(1, "/data/z"),
        Change(0, "/etc"),
        Change(2, "/etc/group"),
        Change(1, "/etc/hostname"),
    ]
    # without lowers nothing can be told apart from an addition
    assert Change(1, "/etc") in overlay_changes(str(upper))


# -- writing -------------------------------------------------------------------------------------


def read_tar(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_write_changes_tar_round_trip(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_tree(lower, {"etc/passwd": "root", "etc/group": "g", "data/x": "x"})
    make_tree(upper, {"etc/hostname": "h", "data/z": "z"})
    os.mknod(upper / "etc/group", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(upper / "data", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "etc/hostname", "user.note", b"\xff\x00binary")
    out = io.BytesIO()
    write_changes_tar(str(upper), overlay_changes(str(upper), [str(lower)]), out)
    members = read_tar(out.getvalue())
    assert {"etc/.wh.group", "data/.wh..wh..opq", "data/.wh.x", "etc/hostname", "data/z"} <= members.keys()
    assert "trusted.overlay.opaque" not in str(members["data"].pax_headers)
    # applying the diff on a copy of lower reproduces the merged view
    merged = tmp_path / "merged"
    make_tree(merged, {"etc/passwd": "root", "etc/group": "g", "data/x": "x"})
    apply_tar(io.BytesIO(out.getvalue()), str(merged), whiteouts="delete")
    assert sorted(str(p.relative_to(merged)) for p in merged.rglob("*")) == [
        "data",
        "data/z",
        "etc",
        "etc/hostname",
        "etc/passwd",
    ]
    assert os.getxattr(merged / "etc/hostname", "user.note") == b"\xff\x00binary"


def test_write_tree_tar_is_deterministic_with_hardlinks(tmp_path):
    root = tmp_path / "root"
    make_tree(root, {"b/file": "data", "a": "x"})
    os.link(root / "b/file", root / "b/link")
    (root / "sym").symlink_to("/etc/passwd")
    os.chown(root / "a", 123, 456)
    outs = []
    for _ in range(2):
        out = io.BytesIO()
        write_tree_tar(str(root), out)
        outs.append(out.getvalue())
    assert outs[0] == outs[1]
    members = read_tar(outs[0])
    assert list(members) == ["a", "b", "sym", "b/file", "b/link"]
    assert members["b/link"].islnk() and members["b/link"].linkname == "b/file"
    assert (members["a"].uid, members["a"].gid, members["a"].uname) == (123, 456, "")
    assert members["sym"].linkname == "/etc/passwd"
    copy = tmp_path / "copy"
    copy.mkdir()
    apply_tar(io.BytesIO(outs[0]), str(copy), whiteouts="delete")
    assert (copy / "b/link").stat().st_ino == (copy / "b/file").stat().st_ino
    assert (copy / "a").stat().st_uid == 123

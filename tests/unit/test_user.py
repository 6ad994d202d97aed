"""User resolution against a rootfs's passwd/group files, runc semantics and hostile symlinks."""

from __future__ import annotations

import os

import pytest

from dockyard.runtime.user import UserLookupError, lookup_home, resolve_in_root, resolve_user

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n"
GROUP = "root:x:0:\nwheel:x:10:app,web\naudio:x:29:app\napp:x:1000:\nstaff:x:50:\n"


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("spec", "uid", "gid", "extra", "home"),
    [
        ("", 0, 0, [], "/root"),
        ("root", 0, 0, [], "/root"),
        ("app", 1000, 1000, [10, 29], "/home/app"),
        ("1000", 1000, 1000, [10, 29], "/home/app"),
        ("app:staff", 1000, 50, [], "/home/app"),
        ("app:50", 1000, 50, [], "/home/app"),
        ("1000:4242", 1000, 4242, [], "/home/app"),
        ("4242", 4242, 0, [], "/"),
        ("4242:4343", 4242, 4343, [], "/"),
        ("web", 33, 33, [10], "/var/www"),
    ],
)
def test_resolve_user(rootfs, spec, uid, gid, extra, home):
    user = resolve_user(rootfs, spec)
    assert (user.uid, user.gid, user.additional_gids, user.home) == (uid, gid, extra, home)


def test_unknown_user_uses_docker_wording(rootfs):
    with pytest.raises(UserLookupError, match=r"^unable to find user nosuch: no matching entries in passwd file$"):
        resolve_user(rootfs, "nosuch")


def test_unknown_group(rootfs):
    with pytest.raises(UserLookupError, match="unable to find group nogrp: no matching entries in group file"):
        resolve_user(rootfs, "app:nogrp")


def test_out_of_range_uid(rootfs):
    with pytest.raises(UserLookupError, match="range"):
        resolve_user(rootfs, str(2**31))


def test_missing_files_allow_numeric_ids_only(tmp_path):
    assert resolve_user(str(tmp_path), "5:6").uid == 5
    assert resolve_user(str(tmp_path), "").uid == 0
    with pytest.raises(UserLookupError):
        resolve_user(str(tmp_path), "app")


def test_passwd_symlink_to_host_is_resolved_inside_rootfs(tmp_path):
    """An absolute symlink to /etc/passwd must read rootfs/etc/passwd-real, never the host's."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/real").write_text("evil:x:4000:4000::/:/bin/sh\n")
    os.symlink("/etc/real", root / "etc/passwd")
    (root / "etc/real-group").write_text("evilgrp:x:4001:evil\n")
    os.symlink("../../../../../../../etc/real-group", root / "etc/group")  # climbs: clamped at the root
    evil = resolve_user(str(root), "evil")
    assert (evil.uid, evil.additional_gids) == (4000, [4001])
    with pytest.raises(UserLookupError):  # the host has a root user; the container must not see it
        resolve_user(str(root), "root")
    assert resolve_in_root(str(root), "/etc/group") == str(root / "etc/real-group")


def test_resolve_in_root_clamps_dotdot_and_loops(tmp_path):
    (tmp_path / "a").mkdir()
    os.symlink("/../../b", tmp_path / "a/link")
    assert resolve_in_root(str(tmp_path), "/a/link/c") == str(tmp_path / "b/c")
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(OSError):
        resolve_in_root(str(tmp_path), "/loop/x")


def test_lookup_home(rootfs):
    assert lookup_home(rootfs, 1000) == "/home/app"
    assert lookup_home(rootfs, 7) is None

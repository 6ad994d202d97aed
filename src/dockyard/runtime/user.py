"""Resolve a container's `User` ("name", "uid", "name:group", "uid:gid") the way runc's user
package does, reading /etc/passwd and /etc/group of the container's root filesystem.

An image is untrusted: its /etc/passwd may be a symlink to a host file (`/etc/shadow`,
`../../../etc/passwd`). Every path is resolved inside the rootfs, with symlinks and ".."
clamped at the rootfs root, before it is opened.
"""

from __future__ import annotations

import os
import stat

MAX_ID = 2**31 - 1
_MAX_SYMLINKS = 255

NO_PASSWD_ENTRIES = "no matching entries in passwd file"
NO_GROUP_ENTRIES = "no matching entries in group file"


class UserLookupError(Exception):
    """The user or group cannot be resolved; the message is runc's/docker's wording."""


class ExecUser:
    """The ids a container process runs with (a plain class: the monitor imports this module, and
    `dataclasses` would cost every monitor its `inspect` import)."""

    __slots__ = ("additional_gids", "gid", "home", "uid")

    def __init__(self) -> None:
        self.uid = 0
        self.gid = 0
        self.additional_gids: list[int] = []
        self.home = "/"

    def __repr__(self) -> str:
        return f"ExecUser(uid={self.uid}, gid={self.gid}, additional_gids={self.additional_gids}, home={self.home!r})"


def resolve_in_root(root: str, path: str) -> str:
    """Host path for `path` inside `root`, following symlinks as if `root` were "/".

    Like Go's securejoin: an absolute symlink restarts at `root`, ".." never climbs above it.
    The result may not exist (its missing tail is appended unresolved)."""
    root = os.path.abspath(root)
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(40, f"too many levels of symbolic links resolving {path} in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(root, *resolved)


def _read_in_root(root: str, path: str) -> list[list[str]]:
    """The colon-separated entries of a passwd/group style file, [] when it is missing."""
    host_path = resolve_in_root(root, path)
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return []
        text = f.read(4 * 1024 * 1024).decode("utf-8", "replace")
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line.split(":"))
    return entries


def _int_or_none(text: str) -> int | None:
    try:
        return int(text, 10) if text.strip().lstrip("-").isdigit() else None
    except ValueError:
        return None


def _field(entry: list[str], index: int) -> str:
    return entry[index] if len(entry) > index else ""


def _check_range(value: int) -> int:
    if value < 0 or value > MAX_ID:
        raise UserLookupError(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve_user(rootfs: str, spec: str) -> ExecUser:
    """Resolve `spec` against rootfs/etc/passwd and rootfs/etc/group (runc's GetExecUser)."""
    user_arg, _, group_arg = (spec or "").partition(":")
    user = ExecUser()
    uid_arg = _int_or_none(user_arg)
    matched_name: str | None = None

    for entry in _read_in_root(rootfs, "/etc/passwd"):
        name, uid, gid = _field(entry, 0), _int_or_none(_field(entry, 2)), _int_or_none(_field(entry, 3))
        if uid is None or gid is None:
            continue
        if user_arg == "":
            hit = uid == user.uid
        elif uid_arg is not None:
            hit = uid == uid_arg
        else:
            hit = name == user_arg
        if hit:
            matched_name = name
            user.uid, user.gid, user.home = uid, gid, _field(entry, 5) or "/"
            break
    else:
        if user_arg:
            if uid_arg is None:
                raise UserLookupError(f"unable to find user {user_arg}: {NO_PASSWD_ENTRIES}")
            user.uid = _check_range(uid_arg)

    if group_arg or matched_name is not None:
        groups = _read_in_root(rootfs, "/etc/group")
        if group_arg:
            user.gid = _resolve_group(groups, group_arg)
        else:
            user.additional_gids = _member_gids(groups, matched_name or "")
    return user


def _resolve_group(groups: list[list[str]], group_arg: str) -> int:
    for entry in groups:
        gid = _int_or_none(_field(entry, 2))
        if gid is not None and (_field(entry, 0) == group_arg or str(gid) == group_arg):
            return gid
    gid_arg = _int_or_none(group_arg)
    if gid_arg is None:
        raise UserLookupError(f"unable to find group {group_arg}: {NO_GROUP_ENTRIES}")
    return _check_range(gid_arg)


def resolve_groups(rootfs: str, names: list[str]) -> list[int]:
    """`--group-add` values (names from the rootfs's /etc/group, or numbers) as gids."""
    if not names:
        return []
    groups = _read_in_root(rootfs, "/etc/group")
    return [_resolve_group(groups, str(name)) for name in names]


def _member_gids(groups: list[list[str]], user_name: str) -> list[int]:
    """Supplementary groups: every group whose member list names the user."""
    gids = []
    for entry in groups:
        gid = _int_or_none(_field(entry, 2))
        members = [m.strip() for m in _field(entry, 3).split(",") if m.strip()]
        if gid is not None and user_name in members and gid not in gids:
            gids.append(gid)
    return gids


def lookup_home(rootfs: str, uid: int) -> str | None:
    """The home directory of `uid` in the rootfs passwd file (runc sets HOME from it)."""
    for entry in _read_in_root(rootfs, "/etc/passwd"):
        if _int_or_none(_field(entry, 2)) == uid:
            return _field(entry, 5) or "/"
    return None

"""The container's filesystem view: OCI mounts, devices, pivot_root, masked and read-only paths.

Runs inside the container init, in its fresh mount namespace, between fork and exec. Every
destination is resolved inside the rootfs first, so a hostile image cannot redirect a mount
onto a host path with a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from dockyard.runtime.builtin import linux
from dockyard.runtime.user import resolve_in_root

_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "nosuid": (False, linux.MS_NOSUID), "suid": (True, linux.MS_NOSUID),
    "nodev": (False, linux.MS_NODEV), "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC), "exec": (True, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS), "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC), "remount": (False, linux.MS_REMOUNT),
    "mand": (False, linux.MS_MANDLOCK), "nomand": (True, linux.MS_MANDLOCK),
    "atime": (True, linux.MS_NOATIME), "noatime": (False, linux.MS_NOATIME),
    "diratime": (True, linux.MS_NODIRATIME), "nodiratime": (False, linux.MS_NODIRATIME),
    "relatime": (False, linux.MS_RELATIME), "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME), "nostrictatime": (True, linux.MS_STRICTATIME),
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "nosymfollow": (False, linux.MS_NOSYMFOLLOW),
}  # fmt: skip
_PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}  # fmt: skip
# Flags a read-only remount must keep (statvfs ST_* bits equal the MS_* ones).
_LOCKED_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC

# Devices every container gets (runc's defaults): path, major, minor.
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)  # fmt: skip
_DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx"),
)  # fmt: skip


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, data string) from OCI mount options."""
    flags = propagation = 0
    data = []
    for option in options:
        if option in _FLAG_OPTIONS:
            clear, bit = _FLAG_OPTIONS[option]
            flags = flags & ~bit if clear else flags | bit
        elif option in _PROPAGATION:
            propagation |= _PROPAGATION[option]
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


def _make_mountpoint(dest: str, source_is_file: bool) -> None:
    if source_is_file:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
    else:
        os.makedirs(dest, exist_ok=True)


def mount_entry(rootfs: str, entry: dict, cgroup_sources: list[tuple[str, str]]) -> None:
    """Perform one OCI mount under `rootfs`."""
    dest = resolve_in_root(rootfs, entry["destination"])
    fstype = entry.get("type") or ""
    source = entry.get("source") or fstype
    flags, propagation, data = parse_options(entry.get("options") or [])
    if fstype == "bind" or flags & linux.MS_BIND:
        _make_mountpoint(dest, not os.path.isdir(source))
        linux.mount(source, dest, None, flags & (linux.MS_BIND | linux.MS_REC))
        if flags & ~(linux.MS_BIND | linux.MS_REC):
            remount_bind(dest, flags & ~linux.MS_REC)
    elif fstype == "cgroup":
        _make_mountpoint(dest, False)
        mount_cgroups(dest, flags, cgroup_sources)
    else:
        _make_mountpoint(dest, False)
        linux.mount(source, dest, fstype, flags, data or None)
    if propagation:
        linux.mount(None, dest, None, propagation)


def remount_bind(path: str, flags: int) -> None:
    """Change a bind mount's flags, keeping the nosuid/nodev/noexec the kernel would lock."""
    locked = os.statvfs(path).f_flag & _LOCKED_FLAGS
    linux.mount(None, path, None, flags | locked | linux.MS_BIND | linux.MS_REMOUNT)


def mount_cgroups(dest: str, flags: int, sources: list[tuple[str, str]]) -> None:
    """/sys/fs/cgroup: a tmpfs with the container's own cgroup directory bound per hierarchy
    (v1), or that one directory bound directly (v2, sources = [("", dir)])."""
    readonly = flags & linux.MS_RDONLY
    if len(sources) == 1 and sources[0][0] == "":
        linux.mount(sources[0][1], dest, None, linux.MS_BIND)
        remount_bind(dest, flags & ~linux.MS_REC)
        return
    linux.mount("tmpfs", dest, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
    for name, host_dir in sources:
        target = os.path.join(dest, name)
        os.makedirs(target, exist_ok=True)
        linux.mount(host_dir, target, None, linux.MS_BIND)
        remount_bind(target, flags | linux.MS_BIND)
    if readonly:
        linux.mount(None, dest, None, linux.MS_REMOUNT | flags, "mode=755")


def create_devices(rootfs: str, devices: list[dict]) -> None:
    """mknod the default devices plus linux.devices; bind the host node where mknod is refused."""
    wanted = {path: {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
              for path, major, minor in DEFAULT_DEVICES}  # fmt: skip
    for device in devices:
        wanted[device["path"]] = device
    for device in wanted.values():
        dest = resolve_in_root(rootfs, device["path"])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[device.get("type", "c")]
        mode = device.get("fileMode", 0o666) & 0o7777
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        try:
            os.mknod(dest, kind | mode, os.makedev(device.get("major", 0), device.get("minor", 0)))
            os.chmod(dest, mode)
            os.chown(dest, device.get("uid", 0), device.get("gid", 0))
        except PermissionError:
            _make_mountpoint(dest, True)
            linux.mount(device["path"], dest, None, linux.MS_BIND)


def create_dev_symlinks(rootfs: str) -> None:
    for target, link in _DEV_SYMLINKS:
        path = resolve_in_root(rootfs, link)
        with contextlib.suppress(FileExistsError):
            os.symlink(target, path)


def bind_console(rootfs: str, pty_fd: int) -> None:
    """/dev/console is the container's pty slave, as runc does for terminal containers."""
    dest = resolve_in_root(rootfs, "/dev/console")
    _make_mountpoint(dest, True)
    linux.mount(os.readlink(f"/proc/self/fd/{pty_fd}"), dest, None, linux.MS_BIND)


def pivot_into(rootfs: str) -> None:
    """Make `rootfs` "/" and detach the host's tree (runc's pivot_root(".", ".") trick)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        linux.pivot_root(".", ".")
        os.fchdir(old_root)
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def mask_paths(paths: list[str]) -> None:
    """Hide paths: /dev/null over files, an empty read-only tmpfs over directories."""
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
            else:
                linux.mount("/dev/null", path, None, linux.MS_BIND)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise


def readonly_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        remount_bind(path, linux.MS_RDONLY | linux.MS_REC)


def setup_rootfs(rootfs: str, spec: dict, cgroup_sources: list[tuple[str, str]], console_fd: int | None) -> None:
    """Everything from "/ rprivate" to pivot_root; masked/read-only paths come after /proc exists."""
    linux_cfg = spec.get("linux") or {}
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
    for entry in spec.get("mounts") or ():
        mount_entry(rootfs, entry, cgroup_sources)
    create_devices(rootfs, linux_cfg.get("devices") or [])
    create_dev_symlinks(rootfs)
    if console_fd is not None:
        bind_console(rootfs, console_fd)
    pivot_into(rootfs)


def finish_rootfs(spec: dict) -> None:
    """After pivot_root: sysctls, masked/read-only paths, read-only root."""
    linux_cfg = spec.get("linux") or {}
    for key, value in (linux_cfg.get("sysctl") or {}).items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))
    mask_paths(linux_cfg.get("maskedPaths") or [])
    readonly_paths(linux_cfg.get("readonlyPaths") or [])
    if (spec.get("root") or {}).get("readonly"):
        remount_bind("/", linux.MS_RDONLY)

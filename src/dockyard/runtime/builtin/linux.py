"""Thin ctypes wrappers over the Linux system calls Python 3.11's `os` module lacks.

Every wrapper raises OSError with errno on failure so callers handle errors the Python way.
Nothing here allocates locks or threads: the functions are safe between fork and exec.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

_libc = ctypes.CDLL(None, use_errno=True)

# clone(2) / unshare(2) / setns(2) namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
}
# The /proc/<pid>/ns/<file> name of each OCI namespace type.
NAMESPACE_PROC_NAMES = {
    "mount": "mnt",
    "cgroup": "cgroup",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "pid": "pid",
    "network": "net",
}

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2)."""
    try:
        _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)))
    except OSError as exc:
        raise OSError(exc.errno, f"mount {source} on {target} ({fstype}, {data}): {exc.strerror}") from None


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags))


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2); glibc has no wrapper, so go through syscall(2)."""
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)))


def unshare(flags: int) -> None:
    """unshare(2) (os.unshare arrives only in Python 3.12)."""
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) into the namespace `fd` refers to."""
    _check(_libc.setns(fd, nstype))


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    data = name.encode()
    _check(_libc.sethostname(data, len(data)))


def setdomainname(name: str) -> None:
    """setdomainname(2) in the current UTS namespace."""
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(
        _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread, with 64-bit masks (two 32-bit halves, version 3)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data))


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def ioctl_int(fd: int, request: int, arg: int = 0) -> None:
    """ioctl(2) with an integer argument (e.g. TIOCSCTTY)."""
    _check(_libc.ioctl(fd, ctypes.c_ulong(request), ctypes.c_int(arg)))


TIOCSCTTY = 0x540E

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def interface_up(name: str = "lo") -> None:
    """Set IFF_UP on an interface of the current network namespace (no `ip` binary needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", name.encode(), 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sh22x", name.encode(), flags | _IFF_UP))

"""Named network namespaces as bind-mounted nsfs files, and running code inside one.

A namespace is entered by one short-lived thread (setns/unshare act on the calling thread only), so the
multi-threaded daemon itself never changes namespace. pyroute2 keeps one netlink socket per thread, so
an IPRoute created and used inside such a thread talks to that namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _in_thread(fn: Callable[[], T]) -> T:
    """Run fn in a fresh thread (which may change its own namespaces) and return its result."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def create(path: Path) -> None:
    """Create a new network namespace kept alive by a bind mount on `path` (with lo up)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o444)

    def make() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        source = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        _check(_libc.mount(source.encode(), str(path).encode(), None, MS_BIND, None), "mount netns")
        _loopback_up()

    try:
        _in_thread(make)
    except BaseException:
        remove(path)
        raise


def _loopback_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def run_in(path: Path | str, fn: Callable[[], T]) -> T:
    """Call fn inside the network namespace bound at `path`."""

    def enter() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), "setns")
        finally:
            os.close(fd)
        return fn()

    return _in_thread(enter)


def remove(path: Path) -> None:
    """Unmount and delete a namespace file; the namespace dies with its last user."""
    with contextlib.suppress(OSError):
        _check(_libc.umount2(str(path).encode(), MNT_DETACH), "umount")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_mounted(path: Path) -> bool:
    """True when `path` is a live nsfs bind mount (not just the empty placeholder file)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(path) for line in f)
    except OSError:
        return False

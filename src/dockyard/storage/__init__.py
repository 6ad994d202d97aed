"""Snapshotters: where unpacked layers and container filesystems live.

`open_snapshotter` picks a driver; `DirectorySnapshotter` holds what both drivers share (on-disk
layout, atomic commit of layers and snapshots, mount bookkeeping), and the drivers only say how a
layer is unpacked, how a snapshot is populated and mounted, and how its changes are found.
The mount(2) helpers live here too so neither driver shells out on the hot path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
import threading
import uuid
from typing import Any, BinaryIO

from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.storage.base import Change, Snapshotter
from dockyard.util.fs import read_json, write_json

__all__ = ["Change", "DirectorySnapshotter", "Snapshotter", "open_snapshotter"]

DRIVERS = ("overlay", "vfs")
_ALIASES = {"overlay2": "overlay"}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MNT_DETACH = 0x2

_TMP_PREFIX = ".tmp-"
_REMOVING_PREFIX = ".rm-"
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_CHAIN_ID_RE = re.compile(r"(?:[a-z0-9]+:)?([a-f0-9]{16,128})")


def open_snapshotter(root: str, driver: str = "auto") -> Snapshotter:
    """The snapshotter for `root` (<data-root>/storage); each driver keeps root/<driver>.

    "auto" keeps the driver that already holds layers (as docker does), otherwise overlay when an
    overlay mount works on root's filesystem, else vfs."""
    driver = _ALIASES.get(driver, driver)
    if driver == "auto":
        driver = _pick_driver(root)
    if driver == "overlay":
        from dockyard.storage.overlay import OverlaySnapshotter

        return OverlaySnapshotter(os.path.join(root, "overlay"))
    if driver == "vfs":
        from dockyard.storage.vfs import VfsSnapshotter

        return VfsSnapshotter(os.path.join(root, "vfs"))
    raise InvalidParameter(f"unknown storage driver {driver!r} (want overlay, vfs or auto)")


def _pick_driver(root: str) -> str:
    for name in DRIVERS:
        try:
            if os.listdir(os.path.join(root, name, "layers")):
                return name
        except FileNotFoundError:
            pass
    from dockyard.storage.overlay import overlay_options

    os.makedirs(root, exist_ok=True)
    return "overlay" if overlay_options(root) is not None else "vfs"


# -- system calls --------------------------------------------------------------------------------

_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str, path: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {path}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError with the target in the message."""
    result = _c().mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode() if data else None
    )
    _check(result, "mount", target)


def unmount(target: str, flags: int = MNT_DETACH) -> None:
    """umount2(2); a target that is not mounted is not an error (unmount is idempotent)."""
    if _c().umount2(target.encode(), flags) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def syncfs(path: str) -> None:
    """Flush the filesystem holding path: a committed layer must survive a crash whole."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _check(_c().syncfs(fd), "syncfs", path)
    finally:
        os.close(fd)


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_mountpoint(target: str) -> bool:
    """Whether something is mounted exactly at target in this mount namespace."""
    target = os.path.realpath(target)
    with open("/proc/self/mountinfo") as f:
        return any(_unescape_mountinfo(line.split(" ", 5)[4]) == target for line in f)


# -- shared layout -------------------------------------------------------------------------------


def _layer_name(chain_id: str) -> str:
    match = _CHAIN_ID_RE.fullmatch(chain_id)
    if match is None:
        raise InvalidParameter(f"invalid layer chain id {chain_id!r}")
    return match.group(1)


def _check_key(key: str) -> str:
    if _KEY_RE.fullmatch(key) is None:
        raise InvalidParameter(f"invalid snapshot key {key!r}")
    return key


class DirectorySnapshotter:
    """Layers under layers/<hex>/ and snapshots under snapshots/<key>/, each with a meta.json.

    Both are built in a temp directory and renamed into place only when complete, so a crash
    never leaves half a layer; leftovers are swept when the snapshotter is opened."""

    name = "directory"

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.layers_dir = os.path.join(self.root, "layers")
        self.snapshots_dir = os.path.join(self.root, "snapshots")
        for directory in (self.layers_dir, self.snapshots_dir):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self.empty_dir = os.path.join(self.root, "empty")  # the parent of a snapshot without layers
        os.makedirs(self.empty_dir, mode=0o755, exist_ok=True)
        self._mounts_file = os.path.join(self.root, "mounts.json")
        self._lock = threading.Lock()
        self._meta_cache: dict[str, dict[str, Any]] = {}
        self._sweep()

    # -- driver hooks ---------------------------------------------------------------------------

    def _unpack_layer(self, tmp: str, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> dict[str, Any]:
        """Build the layer in tmp (renamed to layer_path(chain_id) afterwards); returns extra
        metadata, which must include "size"."""
        raise NotImplementedError

    def _abandon_layer(self, meta: dict[str, Any]) -> None:
        """Undo side effects of _unpack_layer outside tmp when the layer is not committed."""

    def _populate_snapshot(self, tmp: str, parent: str | None) -> None:
        raise NotImplementedError

    def _mount(self, key: str, target: str, readonly: bool) -> None:
        raise NotImplementedError

    def changes(self, key: str) -> list[Change]:
        raise NotImplementedError

    def snapshot_size(self, key: str) -> int:
        raise NotImplementedError

    def _diff_root(self, key: str) -> str:
        """The directory write_diff reads added and modified files from."""
        raise NotImplementedError

    # -- paths and metadata ---------------------------------------------------------------------

    def layer_path(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, _layer_name(chain_id))

    def snapshot_path(self, key: str) -> str:
        return os.path.join(self.snapshots_dir, _check_key(key))

    def _layer_meta(self, chain_id: str) -> dict[str, Any]:
        meta = self._meta_cache.get(chain_id)
        if meta is None:
            meta = read_json(os.path.join(self.layer_path(chain_id), "meta.json"))
            if meta is None:
                raise NotFound(f"layer {chain_id} not found")
            self._meta_cache[chain_id] = meta
        return meta

    def _snapshot_meta(self, key: str) -> dict[str, Any]:
        meta = read_json(os.path.join(self.snapshot_path(key), "meta.json"))
        if meta is None:
            raise NotFound(f"snapshot {key} not found")
        return meta

    def layer_chain(self, chain_id: str | None) -> list[str]:
        """chain_id and its ancestors, top first."""
        chain = []
        while chain_id is not None:
            chain.append(chain_id)
            chain_id = self._layer_meta(chain_id).get("parent")
        return chain

    # -- layers ---------------------------------------------------------------------------------

    def has_layer(self, chain_id: str) -> bool:
        return os.path.isfile(os.path.join(self.layer_path(chain_id), "meta.json"))

    def layer_size(self, chain_id: str) -> int:
        return int(self._layer_meta(chain_id)["size"])

    def apply_layer(self, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> int:
        final = self.layer_path(chain_id)
        if self.has_layer(chain_id):
            return self.layer_size(chain_id)
        if parent is not None and not self.has_layer(parent):
            raise NotFound(f"parent layer {parent} not found")
        tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.layers_dir)
        meta: dict[str, Any] = {}
        try:
            meta = {"chain_id": chain_id, "parent": parent, **self._unpack_layer(tmp, chain_id, parent, tar_stream)}
            write_json(os.path.join(tmp, "meta.json"), meta)
            syncfs(tmp)
            try:
                os.rename(tmp, final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not self.has_layer(chain_id):
                    raise
                self._discard_tmp(tmp, meta)  # another pull committed the same layer first
                return self.layer_size(chain_id)
        except BaseException:
            self._discard_tmp(tmp, meta)
            raise
        return int(meta["size"])

    def _discard_tmp(self, tmp: str, meta: dict[str, Any]) -> None:
        if meta:
            self._abandon_layer(meta)
        shutil.rmtree(tmp, ignore_errors=True)

    def remove_layer(self, chain_id: str) -> None:
        """Delete a layer nothing builds on; idempotent."""
        if not self.has_layer(chain_id):
            return
        name = _layer_name(chain_id)
        for entry in os.listdir(self.layers_dir):
            if not entry.startswith(".") and entry != name:
                meta = read_json(os.path.join(self.layers_dir, entry, "meta.json"), {})
                if meta.get("parent") and _layer_name(meta["parent"]) == name:
                    raise Conflict(f"layer {chain_id} is in use by layer {meta.get('chain_id', entry)}")
        for key in self._snapshot_keys():
            parent = read_json(os.path.join(self.snapshots_dir, key, "meta.json"), {}).get("parent")
            if parent and _layer_name(parent) == name:
                raise Conflict(f"layer {chain_id} is in use by snapshot {key}")
        meta = self._layer_meta(chain_id)
        self._meta_cache.pop(chain_id, None)
        self._remove_dir(self.layer_path(chain_id), self.layers_dir)
        self._abandon_layer(meta)

    # -- snapshots ------------------------------------------------------------------------------

    def _snapshot_keys(self) -> list[str]:
        return [entry for entry in os.listdir(self.snapshots_dir) if not entry.startswith(".")]

    def prepare(self, key: str, parent: str | None) -> None:
        final = self.snapshot_path(key)
        if os.path.exists(final):
            raise Conflict(f"snapshot {key} already exists")
        if parent is not None and not self.has_layer(parent):
            raise NotFound(f"layer {parent} not found")
        tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.snapshots_dir)
        try:
            self._populate_snapshot(tmp, parent)
            write_json(os.path.join(tmp, "meta.json"), {"parent": parent})
            os.rename(tmp, final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise Conflict(f"snapshot {key} already exists") from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def mount(self, key: str, target: str, readonly: bool = False) -> None:
        self._snapshot_meta(key)
        target = os.path.realpath(target)
        self._mount(key, target, readonly)
        with self._lock:
            mounts = read_json(self._mounts_file, {})
            mounts[target] = key
            write_json(self._mounts_file, mounts, durable=False)  # checked against mountinfo

    def unmount(self, target: str) -> None:
        target = os.path.realpath(target)
        unmount(target)
        with self._lock:
            mounts = read_json(self._mounts_file, {})
            if mounts.pop(target, None) is not None:
                write_json(self._mounts_file, mounts, durable=False)  # checked against mountinfo

    def _mounted_at(self, key: str) -> list[str]:
        """Targets where key is still mounted (records whose mount is gone are dropped)."""
        with self._lock:
            mounts = read_json(self._mounts_file, {})
            live = {target: k for target, k in mounts.items() if is_mountpoint(target)}
            if live != mounts:
                write_json(self._mounts_file, live, durable=False)
        return [target for target, k in live.items() if k == key]

    def write_diff(self, key: str, out: BinaryIO) -> None:
        from dockyard.image.layer import write_changes_tar

        write_changes_tar(self._diff_root(key), self.changes(key), out)

    def remove(self, key: str) -> None:
        path = self.snapshot_path(key)
        if not os.path.exists(path):
            return
        mounted = self._mounted_at(key)
        if mounted:
            raise Conflict(f"snapshot {key} is still mounted at {mounted[0]}")
        self._remove_dir(path, self.snapshots_dir)

    # -- housekeeping ---------------------------------------------------------------------------

    @staticmethod
    def _remove_dir(path: str, parent: str) -> None:
        """Rename out of sight first, so a crash mid-delete never leaves a half layer visible."""
        doomed = os.path.join(parent, f"{_REMOVING_PREFIX}{uuid.uuid4().hex}")
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _sweep(self) -> None:
        for directory in (self.layers_dir, self.snapshots_dir):
            for entry in os.listdir(directory):
                if entry.startswith((_TMP_PREFIX, _REMOVING_PREFIX)):
                    shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)

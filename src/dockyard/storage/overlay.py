"""overlay snapshotter (docker's overlay2 layout): each layer is an overlay lowerdir.

layers/<hex>/diff is a layer with whiteouts as overlayfs keeps them (0:0 char devices,
trusted.overlay.opaque); l/<short> links to it so the lowerdir= option stays short with many
layers; snapshots/<key>/{upper,work} is a container's writable layer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import string
import tempfile
from typing import Any, BinaryIO

from dockyard.storage import MS_RDONLY, DirectorySnapshotter, mount, unmount
from dockyard.storage.base import Change

_LINK_ALPHABET = string.ascii_uppercase + string.digits
_LINK_LENGTH = 26
# index/redirect_dir/metacopy off: an upper dir must hold whole files and plain whiteouts, or
# changes() and write_diff() would miss data (docker falls back to a naive diff in that case).
_OPTION_CANDIDATES = (",index=off,redirect_dir=off,metacopy=off", ",index=off", "")
_probe_cache: dict[int, str | None] = {}


def overlay_options(directory: str) -> str | None:
    """Extra mount options overlay accepts with layers on directory's filesystem, or None when
    overlay (with trusted xattrs and whiteout devices) does not work there. Probed once per fs."""
    dev = os.stat(directory).st_dev
    if dev not in _probe_cache:
        _probe_cache[dev] = _probe(directory)
    return _probe_cache[dev]


def _probe(directory: str) -> str | None:
    probe = tempfile.mkdtemp(prefix=".probe-", dir=directory)
    try:
        lower, upper, work, merged = (os.path.join(probe, d) for d in ("lower", "upper", "work", "merged"))
        for d in (lower, upper, work, merged):
            os.mkdir(d)
        try:
            os.setxattr(lower, "trusted.overlay.opaque", b"y")
            os.mknod(os.path.join(lower, "whiteout"), stat.S_IFCHR, os.makedev(0, 0))
        except OSError:
            return None
        for extra in _OPTION_CANDIDATES:
            try:
                mount("overlay", merged, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}{extra}")
            except OSError:
                continue
            unmount(merged)
            return extra
        return None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _mount_from(directory: str, target: str, flags: int, data: str) -> None:
    """Mount with paths relative to directory, in a child so the daemon's cwd never changes.

    Only needed when absolute lowerdirs would overflow the one-page option limit."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.chdir(directory)
            mount("overlay", target, "overlay", flags, data)
            os._exit(0)
        except OSError as e:
            os._exit(e.errno or 1)
        except BaseException:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, f"mount {target}: {os.strerror(code)}")


class OverlaySnapshotter(DirectorySnapshotter):
    name = "overlay"

    def __init__(self, root: str) -> None:
        self.links_dir = os.path.join(os.path.abspath(root), "l")
        os.makedirs(self.links_dir, mode=0o700, exist_ok=True)
        super().__init__(root)
        self._extra_options: str | None = None

    # layers

    def _unpack_layer(self, tmp: str, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> dict[str, Any]:
        from dockyard.image.layer import apply_tar

        diff = os.path.join(tmp, "diff")
        os.mkdir(diff, 0o755)
        size = apply_tar(tar_stream, diff, whiteouts="overlay")
        link = "".join(secrets.choice(_LINK_ALPHABET) for _ in range(_LINK_LENGTH))
        layer_dir = os.path.basename(self.layer_path(chain_id))
        os.symlink(f"../layers/{layer_dir}/diff", os.path.join(self.links_dir, link))
        return {"size": size, "link": link}

    def _abandon_layer(self, meta: dict[str, Any]) -> None:
        if meta.get("link"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.links_dir, meta["link"]))

    def diff_path(self, chain_id: str) -> str:
        return os.path.join(self.layer_path(chain_id), "diff")

    # snapshots

    def _populate_snapshot(self, tmp: str, parent: str | None) -> None:
        upper = os.path.join(tmp, "upper")
        os.mkdir(upper, 0o755)
        os.mkdir(os.path.join(tmp, "work"), 0o700)
        if parent is not None:  # the merged root takes the upper dir's owner and mode
            st = os.stat(self.diff_path(parent))
            os.chown(upper, st.st_uid, st.st_gid)
            os.chmod(upper, st.st_mode & 0o7777)

    def _lowers(self, key: str) -> list[str]:
        """Lower dirs of a snapshot, top first."""
        parent = self._snapshot_meta(key)["parent"]
        return [self.diff_path(chain_id) for chain_id in self.layer_chain(parent)]

    def _mount(self, key: str, target: str, readonly: bool) -> None:
        if self._extra_options is None:
            self._extra_options = overlay_options(self.root) or ""
        snapshot = self.snapshot_path(key)
        parent = self._snapshot_meta(key)["parent"]
        links = [f"l/{self._layer_meta(chain_id)['link']}" for chain_id in self.layer_chain(parent)] or ["empty"]
        flags = MS_RDONLY if readonly else 0

        def options(base: str) -> str:
            lowers = ":".join(os.path.join(base, link) for link in links)
            upper, work = (os.path.join(snapshot, d) for d in ("upper", "work"))
            return f"lowerdir={lowers},upperdir={upper},workdir={work}{self._extra_options}"

        data = options(self.root)
        if len(data) < os.sysconf("SC_PAGESIZE") - 1:
            mount("overlay", target, "overlay", flags, data)
        else:
            _mount_from(self.root, target, flags, options(""))

    def changes(self, key: str) -> list[Change]:
        from dockyard.image.layer import overlay_changes

        return overlay_changes(self._diff_root(key), self._lowers(key))

    def _diff_root(self, key: str) -> str:
        return os.path.join(self.snapshot_path(key), "upper")

    def snapshot_size(self, key: str) -> int:
        from dockyard.image.layer import tree_size

        return tree_size(self._diff_root(key))

    # housekeeping

    def _sweep(self) -> None:
        super()._sweep()
        for link in os.listdir(self.links_dir):
            path = os.path.join(self.links_dir, link)
            if not os.path.exists(path):  # dangling: its layer was never committed or was removed
                os.unlink(path)

"""vfs snapshotter: every layer and snapshot is a full copy (works on any filesystem, no overlay).

layers/<hex>/fs is the parent's tree with the layer applied (whiteouts really delete);
snapshots/<key>/fs is a copy of its parent layer, bind-mounted as the container's root.
"""

from __future__ import annotations

import os
import stat
import subprocess
from typing import Any, BinaryIO

from dockyard.storage import MS_BIND, MS_RDONLY, MS_REMOUNT, DirectorySnapshotter, mount
from dockyard.storage.base import Change


def copy_tree(source: str, dest: str) -> None:
    """Copy source's contents into the existing dir dest keeping owners, modes, times, xattrs,
    hardlinks and devices (reflinks where the filesystem can)."""
    result = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--", f"{source}/.", dest], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise OSError(f"copying {source} to {dest} failed: {result.stderr.strip()}")


class VfsSnapshotter(DirectorySnapshotter):
    name = "vfs"

    def _fill_from(self, fs: str, parent: str | None) -> None:
        os.mkdir(fs, 0o755)
        if parent is not None:
            copy_tree(self.fs_path(parent), fs)

    def fs_path(self, chain_id: str) -> str:
        return os.path.join(self.layer_path(chain_id), "fs")

    def _unpack_layer(self, tmp: str, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> dict[str, Any]:
        from dockyard.image.layer import apply_tar

        fs = os.path.join(tmp, "fs")
        self._fill_from(fs, parent)
        return {"size": apply_tar(tar_stream, fs, whiteouts="delete")}

    def _populate_snapshot(self, tmp: str, parent: str | None) -> None:
        self._fill_from(os.path.join(tmp, "fs"), parent)

    def _mount(self, key: str, target: str, readonly: bool) -> None:
        mount(self._diff_root(key), target, None, MS_BIND)
        if readonly:
            mount("", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)

    def _parent_fs(self, key: str) -> str:
        parent = self._snapshot_meta(key)["parent"]
        return self.empty_dir if parent is None else self.fs_path(parent)

    def _diff_root(self, key: str) -> str:
        return os.path.join(self.snapshot_path(key), "fs")

    def changes(self, key: str) -> list[Change]:
        from dockyard.image.layer import naive_changes

        return naive_changes(self._parent_fs(key), self._diff_root(key))

    def snapshot_size(self, key: str) -> int:
        """Bytes of added or modified files, as docker reports SizeRw for vfs."""
        root = self._diff_root(key)
        total = 0
        for change in self.changes(key):
            if change.kind == 2:
                continue
            st = os.lstat(os.path.join(root, change.path.lstrip("/")))
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                total += st.st_size
        return total

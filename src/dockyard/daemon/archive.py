"""`docker cp` on the daemon side: stat, read and extract paths inside a container's root.

Every path is resolved inside the container root with symlinks interpreted as if that root were `/`
(runtime.user.resolve_in_root), so a hostile symlink in the container never leads outside it. The
tree is walked through directory file descriptors opened with O_NOFOLLOW, so a directory swapped for
a symlink while we read cannot redirect us either. Extraction goes through image.layer's confined
apply. Stopped containers are served by mounting their snapshot for the duration.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.util.timefmt import rfc3339_nano

STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode type bits, which the path-stat JSON carries.
_GO_MODE_BITS = (
    (stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISBLK, 1 << 26), (stat.S_ISFIFO, 1 << 25),
    (stat.S_ISSOCK, 1 << 24), (stat.S_ISCHR, (1 << 26) | (1 << 21)),
)  # fmt: skip
GO_MODE_DIR, GO_MODE_SYMLINK = 1 << 31, 1 << 27
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


def go_file_mode(mode: int) -> int:
    """A stat st_mode as Go's os.FileMode (what docker's path stat reports)."""
    out = stat.S_IMODE(mode) & 0o777
    for test, bit in _GO_MODE_BITS:
        if test(mode):
            out |= bit
            break
    if mode & stat.S_ISUID:
        out |= _GO_SETUID
    if mode & stat.S_ISGID:
        out |= _GO_SETGID
    if mode & stat.S_ISVTX:
        out |= _GO_STICKY
    return out


def preserve_trailing(cleaned: str, original: str) -> str:
    """archive.PreserveTrailingDotOrSeparator: keep a trailing "/." or "/" the caller wrote."""
    if posixpath.basename(cleaned) != "." and (original.endswith("/.") or original == "."):
        cleaned = cleaned.rstrip("/") + "/."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def container_abs_path(path: str) -> str:
    """The absolute, cleaned path in the container, with the caller's trailing "/." or "/"."""
    return preserve_trailing(posixpath.normpath(posixpath.join("/", path)), path)


@dataclass
class ResolvedPath:
    abs_path: str  # in the container ("/etc/.")
    host_path: str  # on the host, confined to the root
    root: str


def resolve_source(root: str, path: str) -> ResolvedPath:
    """moby's ResolvePath: the directory part is resolved in scope, the last element is not followed
    (so `cp` of a symlink copies the link) unless the path ends in "/" or "/."."""
    from dockyard.runtime.user import resolve_in_root

    abs_path = container_abs_path(path)
    directory, base = abs_path.rsplit("/", 1)
    resolved_dir = resolve_in_root(root, directory + "/")
    host = resolved_dir if base in ("", ".") else posixpath.join(resolved_dir, base)
    return ResolvedPath(abs_path, host, root)


def path_stat(resolved: ResolvedPath, container_name: str) -> dict[str, Any]:
    """docker's ContainerPathStat {name,size,mode,mtime,linkTarget}; 404 when the path is missing."""
    from dockyard.runtime.user import resolve_in_root

    try:
        st = os.lstat(resolved.host_path)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"Could not find the file {resolved.abs_path} in container {container_name}") from None
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        rel = os.path.relpath(resolve_in_root(resolved.root, resolved.abs_path), resolved.root)
        link_target = "/" if rel == "." else "/" + rel
    name = posixpath.basename(resolved.abs_path.rstrip("/")) or "/"
    if resolved.abs_path.endswith("/."):
        name = "."
    return {
        "name": name,
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": rfc3339_nano(ns=st.st_mtime_ns),
        "linkTarget": link_target,
    }


def encode_stat(info: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(info).encode()).decode()


def decode_stat(header: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(header))


def _open_nofollow_dir(path: str, dir_fd: int | None = None) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def write_path_tar(resolved: ResolvedPath, out: BinaryIO) -> None:
    """The tar docker sends for GET archive: the entry named after the source's basename (a directory
    with its whole tree), or, for "dir/.", the directory's content as "./..." entries."""
    from dockyard.image.layer import _TarWriter

    abs_path = resolved.abs_path
    rebase = "." if abs_path.endswith("/.") else (posixpath.basename(abs_path.rstrip("/")) or ".")
    host = resolved.host_path.rstrip("/") or "/"
    parent, base = posixpath.split(host)
    parent_fd = _open_nofollow_dir(parent) if host != resolved.root else None
    try:
        with _TarWriter(out) as writer:
            if parent_fd is None:  # the container root itself
                top_fd = _open_nofollow_dir(host)
                st = os.fstat(top_fd)
                _add_tree(writer, top_fd, rebase, st)
                return
            st = os.lstat(base, dir_fd=parent_fd)
            if stat.S_ISDIR(st.st_mode):
                _add_tree(writer, _open_nofollow_dir(base, dir_fd=parent_fd), rebase, st)
            else:
                writer.add(f"/proc/self/fd/{parent_fd}/{base}", rebase, st)
    finally:
        if parent_fd is not None:
            os.close(parent_fd)


def _add_tree(writer: Any, dir_fd: int, name: str, st: os.stat_result) -> None:
    """Add a directory (taking ownership of dir_fd) and everything below it, depth first in name order;
    every entry is reached through its parent's fd (/proc/self/fd/N/name), never through a path."""
    try:
        writer.add(f"/proc/self/fd/{dir_fd}", name, st)  # tarfile adds the trailing "/"
        prefix = name + "/"
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            child = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(child.st_mode):
                try:
                    sub_fd = _open_nofollow_dir(entry.name, dir_fd=dir_fd)
                except OSError:
                    continue  # replaced or removed while we walk
                _add_tree(writer, sub_fd, prefix + entry.name, child)
            else:
                writer.add(f"/proc/self/fd/{dir_fd}/{entry.name}", prefix + entry.name, child)
    finally:
        os.close(dir_fd)


def resolve_extraction_point(root: str, path: str, container_name: str) -> ResolvedPath:
    """PUT archive: the path is fully resolved in scope (a trailing symlink is followed) and must be a
    directory."""
    from dockyard.runtime.user import resolve_in_root

    abs_path = container_abs_path(path)
    host = resolve_in_root(root, abs_path)
    try:
        st = os.lstat(host)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"Could not find the file {abs_path} in container {container_name}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidParameter("extraction point is not a directory")
    return ResolvedPath(abs_path, host, root)


def extract_tar(stream: BinaryIO, resolved: ResolvedPath) -> None:
    """Unpack into the extraction point with the confined layer apply (nothing escapes it)."""
    from dockyard.image.layer import apply_tar

    apply_tar(stream, resolved.host_path, whiteouts="delete")


class ArchiveService:
    """GET/HEAD/PUT /containers/{id}/archive over the container service's mounted roots."""

    def __init__(self, containers: Any) -> None:
        self.containers = containers

    def _on_root(self, ref: str, fn: Callable[[Any, str], Any], readonly: bool = True) -> Any:
        c = self.containers.get(ref)
        result: list[Any] = []
        self.containers._with_rootfs(c, lambda root: result.append(fn(c, os.path.realpath(root))), readonly)
        return result[0]

    def stat(self, ref: str, path: str) -> dict[str, Any]:
        return self._on_root(ref, lambda c, root: path_stat(resolve_source(root, path), c.name.lstrip("/")))

    def get(self, ref: str, path: str) -> tuple[dict[str, Any], Iterator[bytes]]:
        """The path's stat (for the header, sent before the body) and the tar stream."""
        from dockyard.daemon.containers import _stream_writer

        info = self.stat(ref, path)  # 404 before the stream starts
        c = self.containers.get(ref)

        def produce(out: BinaryIO) -> None:
            self._on_root(ref, lambda _c, root: write_path_tar(resolve_source(root, path), out))

        self.containers._event(c, "archive-path")
        return info, _stream_writer(produce)

    def put(self, ref: str, path: str, stream: BinaryIO) -> None:
        c = self.containers.get(ref)
        if c.host_config.get("ReadonlyRootfs"):
            raise InvalidParameter("container rootfs is marked read-only")

        def extract(c: Any, root: str) -> None:
            extract_tar(stream, resolve_extraction_point(root, path, c.name.lstrip("/")))

        try:
            self._on_root(ref, extract, readonly=False)
        except OSError as exc:
            raise DockyardError(f"Error processing tar file: {exc}") from None
        self.containers._event(c, "extract-to-dir")

"""Layer tars: unpack into a directory (whiteouts, path confinement) and write changes back as tars.

Pure functions over directories; the snapshotters in dockyard.storage decide which directories.
Every path taken from a tar is resolved component by component inside the target directory, with
symlinks interpreted as if that directory were `/` (docker's FollowSymlinkInScope, openat2's
RESOLVE_IN_ROOT): a hostile layer can never create, modify or link anything outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Literal

from dockyard.errors import InvalidParameter
from dockyard.storage.base import Change

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_CHUNK = 1 << 20
_MAX_SYMLINK_HOPS = 40
_IGNORED_XATTR_ERRNOS = (errno.ENOTSUP, errno.EOPNOTSUPP)

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2

Whiteouts = Literal["overlay", "delete"]


class LayerError(InvalidParameter):
    """A layer tar that is corrupt or tries to reach outside its target directory."""


# -- paths ---------------------------------------------------------------------------------------


def clean_name(name: str) -> str:
    """A tar member name as a clean path relative to the root ("" for the root itself).

    Leading slashes are dropped (docker joins names onto the target); `..` that would climb
    above the root is rejected, as docker's breakout check does."""
    stripped = name.lstrip("/")
    cleaned = posixpath.normpath(stripped) if stripped else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise LayerError(f"invalid layer entry {name!r}: path escapes the layer root")
    return "" if cleaned == "." else cleaned


class _InRootResolver:
    """Maps a relative directory path to a real directory under root, following symlinks in scope.

    Results are cached per path: callers must call invalidate() whenever they remove or replace
    something that could be part of an already resolved path."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._cache: dict[str, str] = {"": root}

    def invalidate(self) -> None:
        self._cache = {"": self.root}

    def directory(self, rel: str, *, create: bool) -> str:
        """The real path of directory `rel`; missing components are created (0755) when asked."""
        cached = self._cache.get(rel)
        if cached is None:
            cached = self._resolve(rel, create)
            self._cache[rel] = cached
        return cached

    def _resolve(self, rel: str, create: bool) -> str:
        stack = list(reversed(rel.split("/")))
        current = self.root
        hops = 0
        while stack:
            name = stack.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if current != self.root:
                    current = posixpath.dirname(current)
                continue
            candidate = posixpath.join(current, name)
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                if not create:
                    raise LayerError(f"{rel!r} does not exist in the layer") from None
                os.mkdir(candidate, 0o755)
                current = candidate
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise LayerError(f"{rel!r}: too many levels of symbolic links")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current = self.root
                stack.extend(reversed(target.split("/")))
            elif stat.S_ISDIR(st.st_mode):
                current = candidate
            else:
                raise LayerError(f"{rel!r}: {name!r} is not a directory")
        return current


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs marks a deleted path with a 0:0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _remove_path(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# -- apply ---------------------------------------------------------------------------------------


def _header_checking_tarinfo(errors: list[Exception]) -> type[tarfile.TarInfo]:
    """A TarInfo class that records why header parsing stopped.

    tarfile ends iteration silently on a bad checksum or a truncated header; remembering the
    reason lets apply_tar tell a clean end of archive from a corrupt one."""

    class _CheckedTarInfo(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, tf: tarfile.TarFile) -> tarfile.TarInfo:
            try:
                return super().fromtarfile(tf)
            except tarfile.HeaderError as e:
                errors.append(e)
                raise

    return _CheckedTarInfo


_CLEAN_END = (tarfile.EOFHeaderError, tarfile.EmptyHeaderError)


class _ForwardReader:
    """A sequential stream that tarfile's regular read mode accepts: tell() is counted and seek()
    only skips ahead. Faster than tarfile's stream mode ("r|"), whose buffer is re-sliced on
    every 512-byte header read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or pos < self._pos:
            raise tarfile.StreamError("a layer stream cannot seek backwards")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, _CHUNK)):
                break  # tarfile notices the short stream on its next read
        return self._pos


class _Unpacker:
    """State of one apply_tar call: resolver cache, paths this layer wrote, deferred dir times."""

    def __init__(self, dest: str, whiteouts: Whiteouts) -> None:
        self.root = os.path.realpath(dest)
        self.overlay = whiteouts == "overlay"
        self.resolver = _InRootResolver(self.root)
        self.size = 0
        self._written: set[str] = set()  # delete mode: paths from this layer
        self._touched: set[str] = set()  # ... and their ancestors
        self._dir_times: dict[str, tuple[int, int]] = {}

    def finish(self) -> None:
        """Directory times last: creating entries inside a directory bumps its mtime."""
        for path, times in self._dir_times.items():
            with contextlib.suppress(FileNotFoundError):  # removed later in the layer
                os.utime(path, ns=times, follow_symlinks=False)

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = clean_name(member.name)
        parent_rel, base = posixpath.split(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent_rel, base)
            return
        if member.ischr() or member.isblk():
            return  # device nodes are never created from a layer
        if not rel:
            if not member.isdir():
                raise LayerError(f"invalid layer entry {member.name!r}: the root must be a directory")
            self._set_metadata(self.root, member, deferred_times=True)
            return
        path = posixpath.join(self.resolver.directory(parent_rel, create=True), base)
        if member.islnk():
            self._hardlink(member, path)
        elif member.isdir():
            if not self._clear_for(path, directory=True):
                os.mkdir(path, 0o700)
            self._set_metadata(path, member, deferred_times=True)
        elif member.isreg():
            self._clear_for(path, directory=False)
            self._regular_file(tar, member, path)
        elif member.issym():
            self._clear_for(path, directory=False)
            os.symlink(member.linkname, path)
            self._set_metadata(path, member, symlink=True)
        elif member.isfifo():
            self._clear_for(path, directory=False)
            os.mkfifo(path, 0o600)
            self._set_metadata(path, member)
        else:
            return  # unknown entry types are skipped, as docker does
        self._mark_written(path)

    # entries

    def _clear_for(self, path: str, *, directory: bool) -> bool:
        """Remove what is in the way of a new entry; True when an existing directory is kept."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if directory and stat.S_ISDIR(st.st_mode):
            return True
        _remove_path(path, st)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.resolver.invalidate()
        return False

    def _regular_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            source = tar.extractfile(member)
            written = 0
            if source is not None:
                while chunk := source.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    written += len(chunk)
            if written != member.size:
                raise LayerError(f"corrupt layer tar: {member.name!r} is truncated")
            self._set_metadata(fd, member)
        finally:
            os.close(fd)
        self.size += member.size

    def _hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_rel = clean_name(member.linkname)
        if not target_rel:
            raise LayerError(f"invalid hardlink {member.name!r}: target is the layer root")
        try:
            parent = self.resolver.directory(posixpath.dirname(target_rel), create=False)
        except LayerError:
            raise LayerError(f"invalid hardlink {member.name!r}: target {member.linkname!r} not found") from None
        source = posixpath.join(parent, posixpath.basename(target_rel))
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise LayerError(f"invalid hardlink {member.name!r}: target {member.linkname!r} not found") from None
        if stat.S_ISDIR(st.st_mode):
            raise LayerError(f"invalid hardlink {member.name!r}: target {member.linkname!r} is a directory")
        if source == path:
            return
        self._clear_for(path, directory=False)
        os.link(source, path, follow_symlinks=False)

    def _set_metadata(
        self, target: int | str, member: tarfile.TarInfo, *, symlink: bool = False, deferred_times: bool = False
    ) -> None:
        """Owner, then mode (chown clears setuid bits), xattrs, times."""
        nofollow = {} if isinstance(target, int) else {"follow_symlinks": False}
        os.chown(target, member.uid, member.gid, **nofollow)
        if not symlink:
            os.chmod(target, member.mode & 0o7777)
        for name, value in _pax_xattrs(member):
            try:
                os.setxattr(target, name, value, **nofollow)
            except OSError as e:
                if e.errno not in _IGNORED_XATTR_ERRNOS and not (symlink and e.errno == errno.EPERM):
                    raise
        mtime = round(float(member.mtime) * 1e9)
        atime = round(float(member.pax_headers.get("atime", member.mtime)) * 1e9)
        if deferred_times and isinstance(target, str):
            self._dir_times[target] = (atime, mtime)
        else:
            os.utime(target, ns=(atime, mtime), **nofollow)

    # whiteouts

    def _whiteout(self, parent_rel: str, base: str) -> None:
        opaque = base == WHITEOUT_OPAQUE
        if not opaque and base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk etc.), meaningless here
        name = base[len(WHITEOUT_PREFIX) :]
        if not opaque and name in ("", ".", ".."):
            raise LayerError(f"invalid whiteout {base!r}")
        if self.overlay:
            parent = self.resolver.directory(parent_rel, create=True)
            if opaque:
                os.setxattr(parent, OPAQUE_XATTR, b"y")
            elif not os.path.lexists(posixpath.join(parent, name)):
                os.mknod(posixpath.join(parent, name), stat.S_IFCHR, os.makedev(0, 0))
            return
        try:
            parent = self.resolver.directory(parent_rel, create=False)
        except LayerError:
            return  # nothing there to delete
        if opaque:
            with os.scandir(parent) as entries:
                children = [entry.path for entry in entries]
        else:
            children = [posixpath.join(parent, name)]
        for child in children:
            self._remove_lower(child)
        self.resolver.invalidate()

    def _remove_lower(self, path: str) -> None:
        """Delete what lower layers put at path, keeping what this layer wrote (spec: a whiteout
        only hides lower content; entries of the same layer stay)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if path not in self._touched:
            _remove_path(path, st)
        elif stat.S_ISDIR(st.st_mode):
            with os.scandir(path) as entries:
                children = [entry.path for entry in entries]
            for child in children:
                self._remove_lower(child)

    def _mark_written(self, path: str) -> None:
        if self.overlay:
            return  # a fresh directory: everything in it comes from this layer
        self._written.add(path)
        while path != self.root and path not in self._touched:
            self._touched.add(path)
            path = posixpath.dirname(path)


def _pax_xattrs(member: tarfile.TarInfo) -> Iterable[tuple[str, bytes]]:
    """xattrs from SCHILY.xattr.* records, minus overlayfs' own (whiteouts are translated instead)."""
    for key, value in member.pax_headers.items():
        if key.startswith(_PAX_XATTR_PREFIX):
            name = key[len(_PAX_XATTR_PREFIX) :]
            if not name.startswith(_OVERLAY_XATTR_PREFIX):
                yield name, value.encode("utf-8", "surrogateescape")


def apply_tar(stream: BinaryIO, dest: str, *, whiteouts: Whiteouts) -> int:
    """Unpack an uncompressed layer tar from `stream` into `dest`; returns the bytes of file data.

    whiteouts="overlay": dest is a fresh overlay lowerdir; whiteouts become 0:0 char devices and
    opaque directories get trusted.overlay.opaque=y. whiteouts="delete": dest is a copy of the
    parent; whiteouts really delete. Raises LayerError for corrupt or hostile tars."""
    if whiteouts not in ("overlay", "delete"):
        raise ValueError(f"whiteouts must be 'overlay' or 'delete', not {whiteouts!r}")
    unpacker = _Unpacker(dest, whiteouts)
    header_errors: list[Exception] = []
    tarinfo = _header_checking_tarinfo(header_errors)
    try:
        tar = tarfile.open(fileobj=_ForwardReader(stream), mode="r:", tarinfo=tarinfo)  # noqa: SIM115
    except tarfile.ReadError as e:
        if header_errors and isinstance(header_errors[-1], tarfile.EmptyHeaderError):
            return 0  # an empty stream is an empty layer
        raise LayerError(f"corrupt layer tar: {e}") from None
    member: tarfile.TarInfo | None = None
    try:
        with tar:
            while (member := tar.next()) is not None:
                tar.members.clear()  # keep memory flat on huge layers
                unpacker.apply(tar, member)
    except (tarfile.TarError, EOFError) as e:
        where = f" after {member.name!r}" if member is not None else ""
        raise LayerError(f"corrupt layer tar{where}: {e}") from None
    if header_errors and not isinstance(header_errors[-1], _CLEAN_END):
        raise LayerError(f"corrupt layer tar: {header_errors[-1]}")
    unpacker.finish()
    return unpacker.size


# -- changes -------------------------------------------------------------------------------------


def _sorted_entries(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _lower_lookup(parent_lowers: Sequence[str], name: str) -> tuple[bool, list[str]]:
    """Whether `name` exists in the merged view of lower dirs, and the dirs making it up if a directory.

    parent_lowers are ordered top first; whiteouts, opaque directories and non-directories stop
    the search the way overlayfs does."""
    dirs: list[str] = []
    for base in parent_lowers:
        path = posixpath.join(base, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if is_whiteout(st):
            break
        if not stat.S_ISDIR(st.st_mode):
            if not dirs:
                return True, []
            break
        dirs.append(path)
        if is_opaque(path):
            break
    return bool(dirs), dirs


def _lower_children(lowers: Sequence[str]) -> set[str]:
    names: set[str] = set()
    for base in lowers:
        names.update(os.listdir(base))
    return {name for name in names if _lower_lookup(lowers, name)[0]}


def overlay_changes(upper: str, lowers: Sequence[str] = ()) -> list[Change]:
    """Changes recorded in an overlay upper dir; lowers (top first) tell added from modified.

    Whiteout devices are deletions; an opaque directory that hides a lower one also reports each
    hidden lower child as deleted. Without lowers every entry counts as added."""
    changes: list[Change] = []

    def walk(directory: str, rel: str, dir_lowers: list[str]) -> None:
        for entry in _sorted_entries(directory):
            path = f"{rel}/{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if is_whiteout(st):
                changes.append(Change(CHANGE_DELETE, path))
                continue
            existed, child_lowers = _lower_lookup(dir_lowers, entry.name) if dir_lowers else (False, [])
            changes.append(Change(CHANGE_MODIFY if existed else CHANGE_ADD, path))
            if not stat.S_ISDIR(st.st_mode):
                continue
            if child_lowers and is_opaque(entry.path):
                present = set(os.listdir(entry.path))
                changes.extend(
                    Change(CHANGE_DELETE, f"{path}/{name}") for name in _lower_children(child_lowers) - present
                )
                child_lowers = []
            walk(entry.path, path, child_lowers)

    walk(upper, "", list(lowers))
    return sorted(changes, key=lambda c: c.path)


def _same_entry(old: os.stat_result, new: os.stat_result, old_path: str, new_path: str) -> bool:
    """docker's naive comparison: type, mode, owner, device, size (not of dirs), mtime, link target."""
    if (
        old.st_mode != new.st_mode
        or old.st_uid != new.st_uid
        or old.st_gid != new.st_gid
        or old.st_rdev != new.st_rdev
        or old.st_mtime_ns != new.st_mtime_ns
    ):
        return False
    if stat.S_ISDIR(old.st_mode):
        return True
    if old.st_size != new.st_size:
        return False
    return not stat.S_ISLNK(old.st_mode) or os.readlink(old_path) == os.readlink(new_path)


def naive_changes(lower: str, upper: str) -> list[Change]:
    """Changes of tree `upper` against tree `lower` (vfs), shaped like docker's ChangesDirs.

    A deleted directory is reported once (not its contents); an added one with all its contents;
    a directory with changes inside is reported modified."""
    changes: list[Change] = []

    def added_below(rel: str, path: str) -> None:
        for entry in _sorted_entries(path):
            changes.append(Change(CHANGE_ADD, f"{rel}/{entry.name}"))
            if entry.is_dir(follow_symlinks=False):
                added_below(f"{rel}/{entry.name}", entry.path)

    def walk(rel: str, old_dir: str, new_dir: str) -> bool:
        old = {e.name: e for e in _sorted_entries(old_dir)} if os.path.isdir(old_dir) else {}
        new = {e.name: e for e in _sorted_entries(new_dir)}
        changed = False
        for name in sorted(old.keys() | new.keys()):
            path = f"{rel}/{name}"
            if name not in new:
                changes.append(Change(CHANGE_DELETE, path))
            elif name not in old:
                changes.append(Change(CHANGE_ADD, path))
                if new[name].is_dir(follow_symlinks=False):
                    added_below(path, new[name].path)
            else:
                old_st = old[name].stat(follow_symlinks=False)
                new_st = new[name].stat(follow_symlinks=False)
                same = _same_entry(old_st, new_st, old[name].path, new[name].path)
                if stat.S_ISDIR(old_st.st_mode) and stat.S_ISDIR(new_st.st_mode):
                    mark = len(changes)
                    if walk(path, old[name].path, new[name].path) or not same:
                        changes.insert(mark, Change(CHANGE_MODIFY, path))
                        changed = True
                    continue
                if same:
                    continue
                changes.append(Change(CHANGE_MODIFY, path))
                if stat.S_ISDIR(new_st.st_mode):
                    added_below(path, new[name].path)  # a file became a directory
            changed = True
        return changed

    walk("", lower, upper)
    return sorted(changes, key=lambda c: c.path)


def tree_size(root: str) -> int:
    """Bytes used by files under root (hardlinked files counted once, whiteouts ignored)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [root]
    while stack:
        for entry in _sorted_entries(stack.pop()):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


# -- write ---------------------------------------------------------------------------------------


class _TarWriter:
    """Writes filesystem entries as a deterministic PAX tar (no host user names, whole-second
    mtimes, hardlinks found by inode)."""

    def __init__(self, out: BinaryIO) -> None:
        # closed by __exit__
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_CHUNK)  # noqa: SIM115
        self._links: dict[tuple[int, int], str] = {}

    def __enter__(self) -> _TarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tar.close()

    def add(self, path: str, name: str, st: os.stat_result) -> None:
        info = _tarinfo(name, st)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                info.type, info.linkname = tarfile.LNKTYPE, self._links[key]
            else:
                self._links[key] = name
                info.type, info.size = tarfile.REGTYPE, st.st_size
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets do not go into tars
        info.pax_headers = _read_xattrs(path)
        if info.type != tarfile.REGTYPE:
            self.tar.addfile(info)
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb", buffering=0) as f:
            self.tar.addfile(info, f)

    def whiteout(self, name: str, template: os.stat_result | None = None) -> None:
        """A `.wh.` marker; `template` (the directory) gives an opaque marker its owner and time."""
        info = _tarinfo(name, template) if template is not None else tarfile.TarInfo(name)
        info.type, info.size = tarfile.REGTYPE, 0
        if template is None:
            info.mode, info.mtime = 0, 0
        self.tar.addfile(info)


def _tarinfo(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _read_xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _IGNORED_XATTR_ERRNOS:
            return {}
        raise
    headers = {}
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTR_PREFIX):
            continue
        value = os.getxattr(path, name, follow_symlinks=False)
        headers[_PAX_XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return headers


def write_changes_tar(root: str, changes: list[Change], out: BinaryIO) -> None:
    """A layer tar of `changes`: added/modified paths read from `root`, deletions as `.wh.` entries,
    opaque directories (overlay upper) followed by `.wh..wh..opq`."""
    resolver = _InRootResolver(os.path.realpath(root))
    with _TarWriter(out) as writer:
        for change in sorted(changes, key=lambda c: c.path):
            rel = clean_name(change.path)
            if not rel:
                continue
            parent_rel, base = posixpath.split(rel)
            if change.kind == CHANGE_DELETE:
                writer.whiteout(posixpath.join(parent_rel, WHITEOUT_PREFIX + base))
                continue
            try:
                path = posixpath.join(resolver.directory(parent_rel, create=False), base)
                st = os.lstat(path)
            except (LayerError, FileNotFoundError):
                continue  # gone since the changes were computed
            if is_whiteout(st):
                writer.whiteout(posixpath.join(parent_rel, WHITEOUT_PREFIX + base))
                continue
            writer.add(path, rel, st)
            if stat.S_ISDIR(st.st_mode) and is_opaque(path):
                writer.whiteout(posixpath.join(rel, WHITEOUT_OPAQUE), st)


def write_tree_tar(root: str, out: BinaryIO) -> None:
    """The whole tree under root as a tar (docker export): each directory's entries in name order,
    then its subdirectories' contents, so the output is deterministic."""
    with _TarWriter(out) as writer:
        stack: list[tuple[str, str]] = [(root, "")]
        while stack:
            directory, prefix = stack.pop()
            subdirs = []
            for entry in _sorted_entries(directory):
                st = entry.stat(follow_symlinks=False)
                writer.add(entry.path, prefix + entry.name, st)
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append((entry.path, f"{prefix}{entry.name}/"))
            stack.extend(reversed(subdirs))

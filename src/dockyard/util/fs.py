"""Crash-safe file writes: a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import json
import os

# Container monitors use this module: tempfile (random, shutil, bz2, lzma), pathlib and typing would
# cost each of them memory, so the temp file is made here and the types are for the checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, then rename.

    durable=False skips the fsyncs, for runtime state that a reboot discards anyway (bundles, runtime
    state, mount tables): readers still see the old or the new content, never a torn file."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    fd, tmp = _create_temp(directory or ".", name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress_missing():
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory or ".")


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new file `.<name>.<random>.tmp` (mode 0600) next to the target, as tempfile.mkstemp makes it."""
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name} in {directory}")


def write_json(path: str | os.PathLike[str], obj: Any, mode: int = 0o644, durable: bool = True) -> None:
    """Atomically persist a JSON document (see atomic_write for `durable`)."""
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode(), mode, durable)


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON document, or `default` when the file does not exist."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or create inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is FileNotFoundError

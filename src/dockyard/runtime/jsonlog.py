"""Docker's json-file log driver: the writer the monitor feeds and the reader `docker logs` uses.

One JSON object per line, `{"log":"text\\n","stream":"stdout","time":"<RFC3339Nano UTC>"}`,
as moby's jsonfilelog writes it, so logs stay readable by tools that know docker's files. The
reader parses our own fixed layout without a JSON decoder per line (logs of 100 MB must stream
fast) and falls back to `json.loads` for anything else.
"""

from __future__ import annotations

import json
import os
import time
from collections import namedtuple
from collections.abc import Callable, Generator, Iterator

# The monitor writes logs with this module: `typing` stays out of its memory.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

PARTIAL_LIMIT = 16 * 1024  # docker's copier flushes an unterminated line at this size
READ_CHUNK = 1 << 20
FOLLOW_POLL = 0.05
LOG_MODE = 0o640
STREAMS = ("stdout", "stderr")


LogEntry = namedtuple("LogEntry", "stream time_str data")
LogEntry.__doc__ = 'One log message; `data` ends with b"\\n" unless the line was flushed as a partial.'


class _Clock:
    """RFC 3339 nano timestamps, formatting the date part only once per second (hot path)."""

    __slots__ = ("_base", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._base = ""

    def now(self) -> str:
        secs, frac = divmod(time.time_ns(), 1_000_000_000)
        if secs != self._sec:
            self._sec = secs
            self._base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))  # no datetime import
        return f"{self._base}.{frac:09d}Z"


def encode_entry(stream: str, data: bytes, time_str: str) -> bytes:
    """One json-file line (with its trailing newline) for `data` from `stream`."""
    text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
    return f'{{"log":{text},"stream":"{stream}","time":"{time_str}"}}\n'.encode()


class JsonLogWriter:
    """Appends output to a json-file log, splitting at newlines; with `max_size`, rotated as docker's
    max-size/max-file do (container.log → .1 → .2 ..., `max_files` files in all; one file: truncated).

    Output arrives in arbitrary chunks; a line is written once its newline arrives, or as a
    partial message once PARTIAL_LIMIT bytes are pending, as docker does.
    """

    def __init__(self, path: str, max_size: int = 0, max_files: int = 2) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self._clock = _Clock()
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._fd = -1
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Log a chunk of output from `stream` ("stdout" or "stderr")."""
        buf = self._pending[stream] + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        pieces: list[bytes] = []
        for line in lines:
            pieces.extend(_split_long(line + b"\n"))
        while len(rest) >= PARTIAL_LIMIT:
            pieces.append(rest[:PARTIAL_LIMIT])
            rest = rest[PARTIAL_LIMIT:]
        self._pending[stream] = rest
        self._emit(stream, pieces)

    def flush(self) -> None:
        """Write any unterminated line as a partial message (the stream ended)."""
        for stream, rest in self._pending.items():
            if rest:
                self._pending[stream] = b""
                self._emit(stream, [rest])

    def close(self) -> None:
        """Flush partial lines and close the file."""
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1

    def _emit(self, stream: str, pieces: list[bytes]) -> None:
        if not pieces:
            return
        now = self._clock.now()
        entries = [encode_entry(stream, piece, now) for piece in pieces]
        if not self.max_size:
            self._write(b"".join(entries))
            return
        batch: list[bytes] = []
        pending = 0
        for entry in entries:  # a file outgrows max-size by one message at most, as docker's
            if self._size + pending and self._size + pending + len(entry) > self.max_size:
                self._write(b"".join(batch))
                batch, pending = [], 0
                self._rotate()
            batch.append(entry)
            pending += len(entry)
        self._write(b"".join(batch))

    def _write(self, blob: bytes) -> None:
        view = memoryview(blob)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(blob)

    def _rotate(self) -> None:
        """Shift the old files up by one (the oldest falls off), or truncate when only one is kept."""
        os.close(self._fd)
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for index in range(self.max_files - 1, 1, -1):
                older = f"{self.path}.{index - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index}")
            os.replace(self.path, self.path + ".1")
        self._open()


def _split_long(line: bytes) -> list[bytes]:
    """Cut a terminated line longer than PARTIAL_LIMIT into partial messages plus its end."""
    if len(line) <= PARTIAL_LIMIT + 1:
        return [line]
    return [line[i : i + PARTIAL_LIMIT] for i in range(0, len(line), PARTIAL_LIMIT)]


# ---------------------------------------------------------------------------------------- reader

_PREFIX = b'{"log":"'
_STREAM_SEP = b'","stream":"'
_TIME_SEP = b'","time":"'
_FIXED_TIME_LEN = 30  # 2006-01-02T15:04:05.000000000Z: comparable as strings
# offsets from the line's end of `","stream":"stdout","time":"<30 chars>"}` in our own layout
_FIXED_STREAM_AT = -(len(_STREAM_SEP) + 6 + len(_TIME_SEP) + _FIXED_TIME_LEN + 2)
_FIXED_STREAM_END = _FIXED_STREAM_AT + len(_STREAM_SEP)
_FIXED_TIME_AT = -(len(_TIME_SEP) + _FIXED_TIME_LEN + 2)


class _Selector:
    """Decodes log lines and applies the stream and time filters, cheapest test first."""

    __slots__ = ("since", "since_str", "streams", "until", "until_str")

    def __init__(self, stdout: bool, stderr: bool, since: float, until: float | None) -> None:
        from dockyard.util.timefmt import rfc3339_nano  # the reader only: keeps the monitor small

        self.streams = {name for name, wanted in zip(STREAMS, (stdout, stderr), strict=True) if wanted}
        self.since = since
        self.until = until
        self.since_str = rfc3339_nano(since) if since else ""
        self.until_str = rfc3339_nano(until) if until is not None else ""

    def decode(self, line: bytes) -> LogEntry | None:
        """The entry for one line, or None when it is filtered out or not a log line."""
        if (
            line[_FIXED_STREAM_AT:_FIXED_STREAM_END] == _STREAM_SEP
            and line[_FIXED_TIME_AT:-32] == _TIME_SEP
            and line[:8] == _PREFIX
            and line[-2:] == b'"}'
        ):
            stream = line[-48:-42].decode()  # the fixed layout this module writes
            time_str = line[-32:-2].decode()
            raw = line[len(_PREFIX) : _FIXED_STREAM_AT]
        else:
            parsed = _parse_fast(line) or _parse_slow(line)
            if parsed is None:
                return None
            stream, time_str, raw = parsed
        if stream not in self.streams or (self.since and not self._after_since(time_str)):
            return None
        return LogEntry(stream, time_str, _unescape(raw))

    def _after_since(self, time_str: str) -> bool:
        if not self.since:
            return True
        if len(time_str) == _FIXED_TIME_LEN:
            return time_str >= self.since_str
        return _parse_time(time_str) >= self.since

    def past_until(self, time_str: str) -> bool:
        """True once entries are newer than `until` (logs are in time order, so stop)."""
        if self.until is None:
            return False
        if len(time_str) == _FIXED_TIME_LEN:
            return time_str > self.until_str
        return _parse_time(time_str) > self.until


def _parse_time(time_str: str) -> float:
    from dockyard.util.timefmt import parse_rfc3339

    return parse_rfc3339(time_str)


def _unescape(raw: bytes) -> bytes:
    """The bytes of a JSON string body; the common `text\\n` needs no decoder."""
    if raw[-2:] == b"\\n" and b"\\" not in raw[:-2]:
        return raw[:-2] + b"\n"
    if b"\\" not in raw:
        return raw
    return json.loads(b'"' + raw + b'"').encode("utf-8", "replace")


def _parse_fast(line: bytes) -> tuple[str, str, bytes] | None:
    """Split a line of exactly our layout without a JSON decoder.

    An unescaped `"` cannot occur inside the JSON string, so the last `","stream":"` is the
    end of the log text."""
    if not line.startswith(_PREFIX) or not line.endswith(b'"}'):
        return None
    cut = line.rfind(_STREAM_SEP)
    if cut < 0:
        return None
    tail = line[cut + len(_STREAM_SEP) : -2]
    stream, sep, time_part = tail.partition(_TIME_SEP)
    if not sep or b'"' in time_part or b'"' in stream:
        return None
    raw = line[len(_PREFIX) : cut]
    return stream.decode(), time_part.decode(), raw


def _parse_slow(line: bytes) -> tuple[str, str, bytes] | None:
    """Any other json-file line (other field order, attrs); None for garbage."""
    try:
        obj = json.loads(line)
        text = json.dumps(obj["log"], ensure_ascii=False)[1:-1]
        return obj["stream"], obj["time"], text.encode("utf-8", "replace")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _log_files(path: str) -> list[str]:
    """The rotated files, oldest (highest number) first, then the current one; those that exist."""
    rotated = []
    index = 1
    while os.path.exists(f"{path}.{index}"):
        rotated.append(f"{path}.{index}")
        index += 1
    return [*reversed(rotated), *([path] if os.path.exists(path) else [])]


def _start_of_last_lines(path: str, count: int) -> tuple[int, int]:
    """(offset, lines found) of the `count` last complete lines of a file, read backwards."""
    with open(path, "rb", buffering=0) as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        seen = 0
        last_newline_found = False
        while pos > 0:
            size = min(READ_CHUNK, pos)
            pos -= size
            f.seek(pos)
            block = f.read(size)
            idx = len(block)
            while True:
                idx = block.rfind(b"\n", 0, idx)
                if idx < 0:
                    break
                if not last_newline_found:
                    last_newline_found = True  # ends the last line; a trailing partial is skipped
                    continue
                seen += 1
                if seen == count:
                    return pos + idx + 1, seen
        return 0, seen + (1 if last_newline_found else 0)


def _tail_plan(files: list[str], tail: int) -> list[tuple[str, int]]:
    """(file, start offset) pairs that together hold the last `tail` lines."""
    plan: list[tuple[str, int]] = []
    remaining = tail
    for path in reversed(files):
        if remaining <= 0:
            break
        offset, found = _start_of_last_lines(path, remaining)
        plan.insert(0, (path, offset))
        remaining -= found
    return plan


def read_log(
    path: str,
    *,
    stdout: bool = True,
    stderr: bool = True,
    since: float = 0,
    until: float | None = None,
    tail: int | None = None,
    follow: bool = False,
    is_running: Callable[[], bool] | None = None,
) -> Iterator[LogEntry]:
    """Entries of a json-file log (and its rotated .1), oldest first, filtered like `docker logs`.

    `tail` counts lines at the end of the log before the stream filter, as docker does.
    With `follow`, keep reading new entries until `is_running()` turns false and the file is
    drained (forever without `is_running`; the caller closes the generator)."""
    selector = _Selector(stdout, stderr, since, until)
    files = _log_files(path)
    if tail is None:
        plan = [(p, 0) for p in files]
    else:
        plan = _tail_plan(files, tail) if tail > 0 else [(p, os.path.getsize(p)) for p in files[-1:]]
    for index, (file_path, offset) in enumerate(plan):
        f = open(file_path, "rb", buffering=0)  # noqa: SIM115 - handed to _follow or closed here
        try:
            f.seek(offset)
            rest = yield from _read_available(f, selector, b"")
            if rest is None:
                return
            if follow and index == len(plan) - 1 and file_path == path:
                yield from _follow(path, f, rest, selector, is_running)
                return
        finally:
            f.close()
    if follow:
        yield from _follow_new_file(path, selector, is_running)


def _read_available(f: BinaryIO, selector: _Selector, rest: bytes) -> Generator[LogEntry, None, bytes | None]:
    """Yield entries up to the end of the file; return the unterminated remainder, or None
    when `until` was passed."""
    decode = selector.decode
    while True:
        chunk = f.read(READ_CHUNK)
        if not chunk:
            return rest
        lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        rest = lines.pop()
        for line in lines:
            entry = decode(line)
            if entry is not None:
                if selector.past_until(entry.time_str):
                    return None
                yield entry


def _follow(
    path: str, f: BinaryIO, rest: bytes, selector: _Selector, is_running: Callable[[], bool] | None
) -> Iterator[LogEntry]:
    """Tail an open log file, switching to the new file when the writer rotates."""
    final_pass = False
    try:
        while True:
            remainder = yield from _read_available(f, selector, rest)
            if remainder is None:
                return
            rest = remainder
            if _rotated(path, f):
                f.close()
                f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in finally
                rest = b""
                continue
            if final_pass:
                return
            if is_running is not None and not is_running():
                final_pass = True  # read once more: output written just before the exit
                continue
            time.sleep(FOLLOW_POLL)
    finally:
        f.close()


def _follow_new_file(path: str, selector: _Selector, is_running: Callable[[], bool] | None) -> Iterator[LogEntry]:
    """Follow a log that does not exist yet."""
    while not os.path.exists(path):
        if is_running is not None and not is_running():
            return
        time.sleep(FOLLOW_POLL)
    yield from _follow(path, open(path, "rb", buffering=0), b"", selector, is_running)  # noqa: SIM115


def _rotated(path: str, f: BinaryIO) -> bool:
    """True when `path` now names a different file than the one open as `f`."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False

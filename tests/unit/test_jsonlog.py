"""json-file log writer and reader: docker's format, partial lines, tail, since/until, follow."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from dockyard.runtime import jsonlog
from dockyard.runtime.jsonlog import JsonLogWriter, LogEntry, read_log
from dockyard.util.timefmt import parse_rfc3339


def entries(path: Path, **kwargs: object) -> list[tuple[str, bytes]]:
    return [(e.stream, e.data) for e in read_log(str(path), **kwargs)]  # type: ignore[arg-type]


def test_round_trip_in_docker_format(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    writer = JsonLogWriter(str(log))
    tricky = 'quote " backslash \\ tab \t ctl \x01 <html> ünï 日本\n'.encode()
    writer.write("stdout", b"hello\nwor")
    writer.write("stderr", tricky)
    writer.write("stdout", b"ld\n\xff bad utf8\n")
    writer.close()
    lines = log.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert list(first) == ["log", "stream", "time"]
    assert first["log"] == "hello\n" and first["stream"] == "stdout"
    assert first["time"].endswith("Z") and abs(parse_rfc3339(first["time"]) - time.time()) < 60
    assert json.loads(lines[1])["log"] == tricky.decode()
    assert entries(log) == [
        ("stdout", b"hello\n"),
        ("stderr", tricky),
        ("stdout", b"world\n"),
        ("stdout", "\ufffd bad utf8\n".encode()),
    ]
    assert entries(log, stdout=False) == [("stderr", tricky)]
    assert entries(log, stderr=False)[0] == ("stdout", b"hello\n")
    assert (log.stat().st_mode & 0o777) == 0o640


def test_reads_docker_written_lines(tmp_path: Path) -> None:
    """Lines written by docker itself: other key order, trimmed nanoseconds, attrs, garbage."""
    log = tmp_path / "c.log"
    log.write_bytes(
        b'{"log":"a \\u003cb\\u003e\\n","stream":"stdout","time":"2024-01-02T03:04:05.5Z"}\n'
        b'{"stream":"stderr","log":"x\\n","time":"2024-01-02T03:04:06Z"}\n'
        b"not json at all\n"
        b'{"log":"y\\n","stream":"stdout","time":"2024-01-02T03:04:07.123456789Z","attrs":{"k":"v"}}\n'
    )
    assert entries(log) == [("stdout", b"a <b>\n"), ("stderr", b"x\n"), ("stdout", b"y\n")]
    since = parse_rfc3339("2024-01-02T03:04:06Z")
    assert entries(log, since=since) == [("stderr", b"x\n"), ("stdout", b"y\n")]
    assert entries(log, until=since) == [("stdout", b"a <b>\n"), ("stderr", b"x\n")]


def test_partial_lines_flushed_at_16k_and_on_close(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log))
    writer.write("stdout", b"x" * 10_000)
    assert log.read_bytes() == b""  # not a whole line yet
    writer.write("stdout", b"y" * 10_000)  # 20 000 pending: one 16 KiB partial goes out
    got = entries(log)
    assert got == [("stdout", b"x" * 10_000 + b"y" * (jsonlog.PARTIAL_LIMIT - 10_000))]
    writer.write("stdout", b"tail-without-newline")
    writer.close()  # the stream ended: the rest is written as a partial message
    data = b"".join(d for _, d in entries(log))
    assert data == b"x" * 10_000 + b"y" * 10_000 + b"tail-without-newline"
    assert not data.endswith(b"\n")


def test_long_terminated_line_split_into_partials(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log))
    writer.write("stderr", b"z" * 40_000 + b"\n")
    writer.close()
    got = entries(log)
    assert [len(d) for _, d in got] == [16384, 16384, 40_001 - 32768]
    assert b"".join(d for _, d in got) == b"z" * 40_000 + b"\n"


def test_tail_counts_from_the_end_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log), max_size=2000)
    for i in range(100):
        writer.write("stdout" if i % 2 else "stderr", b"line %d\n" % i)
    writer.close()
    assert (tmp_path / "c.log.1").exists()
    everything = entries(log)
    assert 0 < len(everything) < 100  # older than the .1 file is gone
    assert everything[-1] == ("stdout", b"line 99\n")
    assert entries(log, tail=3) == [("stdout", b"line 97\n"), ("stderr", b"line 98\n"), ("stdout", b"line 99\n")]
    current_lines = len(log.read_bytes().splitlines())
    spanning = entries(log, tail=current_lines + 2)
    assert len(spanning) == current_lines + 2 and spanning == everything[-(current_lines + 2) :]
    assert entries(log, tail=0) == []
    assert entries(log, tail=10_000) == everything
    assert entries(log, tail=2, stderr=False) == [("stdout", b"line 99\n")]  # tail, then filter


def test_tail_on_big_file_and_trailing_partial_write(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log))
    for i in range(30_000):
        writer.write("stdout", b"%06d %s\n" % (i, b"p" * 50))
    writer.close()
    with open(log, "ab") as f:
        f.write(b'{"log":"half a li')  # a writer caught mid-line
    assert [d[:6] for _, d in entries(log, tail=2)] == [b"029998", b"029999"]
    assert len(entries(log)) == 30_000


def test_since_and_until(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log))
    writer.write("stdout", b"early\n")
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    writer.write("stdout", b"late\n")
    writer.close()
    assert entries(log, since=middle) == [("stdout", b"late\n")]
    assert entries(log, until=middle) == [("stdout", b"early\n")]
    assert entries(log, since=middle, until=middle) == []


def test_follow_until_not_running(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log), max_size=600)
    writer.write("stdout", b"before\n")
    running = threading.Event()
    running.set()

    def produce() -> None:
        for i in range(20):
            writer.write("stdout", b"live %d\n" % i)  # rotates several times meanwhile
            time.sleep(0.01)
        writer.write("stdout", b"last words")
        writer.close()
        running.clear()

    producer = threading.Thread(target=produce)
    got: list[LogEntry] = []
    follower = read_log(str(log), follow=True, is_running=running.is_set)
    got.append(next(follower))
    producer.start()
    got.extend(follower)  # ends by itself once not running and drained
    producer.join()
    data = [e.data for e in got]
    assert data[0] == b"before\n"
    assert data[1:] == [b"live %d\n" % i for i in range(20)] + [b"last words"]


def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    done = threading.Event()

    def produce() -> None:
        time.sleep(0.1)
        writer = JsonLogWriter(str(log))
        writer.write("stderr", b"born\n")
        writer.close()
        time.sleep(0.1)
        done.set()

    threading.Thread(target=produce).start()
    got = list(read_log(str(log), follow=True, tail=0, is_running=lambda: not done.is_set()))
    assert [(e.stream, e.data) for e in got] == [("stderr", b"born\n")]


def test_reader_throughput(tmp_path: Path) -> None:
    """Guard the fast path: 20 MB of typical lines must read well above 20 MB/s."""
    log = tmp_path / "big.log"
    writer = JsonLogWriter(str(log))
    chunk = b"".join(b"%08d the quick brown fox jumps over the lazy dog %s\n" % (i, b"." * 40) for i in range(2000))
    for _ in range(100):
        writer.write("stdout", chunk)
    writer.close()
    start = time.perf_counter()
    total = sum(len(e.data) for e in read_log(str(log)))
    elapsed = time.perf_counter() - start
    assert total == len(chunk) * 100
    assert total / elapsed > 20e6, f"{total / elapsed / 1e6:.1f} MB/s"


def test_max_size_and_max_file_rotation(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    writer = JsonLogWriter(str(log), max_size=1000, max_files=3)
    writer.write("stdout", b"".join(b"line %03d\n" % i for i in range(300)))  # one big chunk of output
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c.log", "c.log.1", "c.log.2"]  # never more than max-file files
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())  # each within max-size
    kept = entries(log)
    assert kept[-1] == ("stdout", b"line 299\n") and kept == sorted(kept)  # oldest file first, in order
    numbers = [int(data.split()[1]) for _, data in kept]
    assert numbers == list(range(numbers[0], 300))

    single = tmp_path / "one" / "c.log"
    single.parent.mkdir()
    writer = JsonLogWriter(str(single), max_size=500, max_files=1)
    for i in range(100):
        writer.write("stdout", b"line %03d\n" % i)
    writer.close()
    assert [p.name for p in single.parent.iterdir()] == ["c.log"]  # truncated in place, no backups
    assert entries(single)[-1] == ("stdout", b"line 099\n") and single.stat().st_size <= 500

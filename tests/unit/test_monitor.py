"""The monitor end to end under runc: spawn → attach → start → wait through MonitorHandle.

Real containers (busybox rootfs, runc), real sockets; every test leaves no monitor, runc
state, socket or pid file behind, even when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime import frames
from dockyard.runtime.base import RuntimeFailure
from dockyard.runtime.builtin.runtime import proc_start_time
from dockyard.runtime.jsonlog import read_log
from dockyard.runtime.monitor import UsageError, exit_code_from_status, parse_args
from dockyard.runtime.shim import ExitStatus, MonitorHandle, connect_socket, read_exit_status
from tests.helpers.rootfs import make_busybox_rootfs
from tests.helpers.waiting import wait_until

RUNC = "/usr/sbin/runc"
needs_runc = pytest.mark.skipif(not (os.path.exists(RUNC) and os.geteuid() == 0), reason="needs root and runc")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="module")
def base_spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("spec")
    subprocess.run([RUNC, "spec"], cwd=work, check=True)
    return json.loads((work / "config.json").read_text())


def _alive(pid: int) -> bool:
    info = proc_start_time(pid)  # None once it is gone (or going while we read)
    return info is not None and info[0] != "Z"


class Launcher:
    """Spawns containers for one test and tears every one of them down afterwards."""

    def __init__(self, tmp_path: Path, rootfs: Path, spec: dict) -> None:
        self.tmp_path = tmp_path
        self.rootfs = rootfs
        self.spec = spec
        self.runtime_root = tmp_path / "runc-root"
        self.started: list[tuple[str, MonitorHandle]] = []
        self.ids: list[str] = []

    def state_dir(self, cid: str) -> Path:
        return self.tmp_path / cid

    def spawn(
        self, args: list[str], *, tty: bool = False, stdin: bool = False, stdin_once: bool = False
    ) -> MonitorHandle:
        cid = f"dytest-{uuid.uuid4().hex[:16]}"
        self.ids.append(cid)
        bundle = self.tmp_path / f"bundle-{cid}"
        bundle.mkdir()
        config = json.loads(json.dumps(self.spec))
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        config["process"]["args"] = args
        config["process"]["terminal"] = tty
        (bundle / "config.json").write_text(json.dumps(config))
        state = self.state_dir(cid)
        state.mkdir()
        handle = MonitorHandle.spawn(
            container_id=cid,
            state_dir=str(state),
            bundle=str(bundle),
            runtime="runc",
            runtime_root=str(self.runtime_root),
            tty=tty,
            open_stdin=stdin,
            stdin_once=stdin_once,
            log_path=str(state / "container.log"),
        )
        self.started.append((cid, handle))
        return handle

    def cleanup(self) -> list[str]:
        """Kill what still runs; return what was left behind (for the assertion)."""
        leftovers = []
        for cid, handle in self.started:
            if not wait_until(lambda h=handle: not _alive(h.monitor_pid), timeout=5):
                leftovers.append(f"monitor {handle.monitor_pid} of {cid} still running")
                try:
                    handle.kill(signal.SIGKILL)
                    handle.wait(timeout=10)
                except (RuntimeFailure, OSError):
                    os.kill(handle.monitor_pid, signal.SIGKILL)
            for name in ("monitor.sock", "monitor.pid"):
                if (self.state_dir(cid) / name).exists():
                    leftovers.append(f"{name} of {cid}")
        for cid in self.ids:
            subprocess.run(
                [RUNC, "--root", str(self.runtime_root), "delete", "--force", cid], capture_output=True, check=False
            )
        if self.runtime_root.exists():
            leftovers += [f"runc state {p.name}" for p in self.runtime_root.iterdir()]
            shutil.rmtree(self.runtime_root, ignore_errors=True)
        return leftovers


@pytest.fixture
def launcher(tmp_path: Path, rootfs: Path, base_spec: dict) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path, rootfs, base_spec)
    try:
        yield launcher
    finally:
        leftovers = launcher.cleanup()
    assert not leftovers, leftovers


def collect(conn) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
    out: dict[int, bytes] = {frames.STDOUT: b"", frames.STDERR: b""}
    for kind, data in conn:
        out[kind] += data
    return out


def log_text(launcher: Launcher, handle: MonitorHandle, **filters: object) -> list[tuple[str, bytes]]:
    path = os.path.join(handle.state_dir, "container.log")
    return [(e.stream, e.data) for e in read_log(path, **filters)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- pure


def test_parse_args_and_exit_codes() -> None:
    opts = parse_args(
        ["--id", "x", "--bundle=b", "--state-dir", "/s", "--runtime", "runc", "--tty", "--log-max-size", "10"]
    )
    assert opts["id"] == "x" and opts["tty"] and not opts["stdin"]
    assert opts["bundle"] == os.path.abspath("b") and opts["log-max-size"] == 10
    with pytest.raises(UsageError):
        parse_args(["--id", "x"])
    with pytest.raises(UsageError):
        parse_args(["--bogus"])
    assert exit_code_from_status(3 << 8) == 3
    assert exit_code_from_status(signal.SIGKILL) == 137


def test_frame_codec_roundtrip() -> None:
    blob = frames.encode_frame(frames.STDOUT, b"abc") + frames.encode_control({"op": "x"})
    decoder = frames.FrameDecoder()
    got = decoder.feed(blob[:5]) + decoder.feed(blob[5:12]) + decoder.feed(blob[12:])
    assert got[0] == (frames.STDOUT, b"abc")
    assert got[1][0] == frames.CONTROL and frames.decode_control(got[1][1]) == {"op": "x"}
    assert decoder.pending == 0
    with pytest.raises(frames.FrameError):
        frames.FrameDecoder().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01")


# ---------------------------------------------------------------------------------- runc


@needs_runc
def test_output_reaches_attached_client_and_log(launcher: Launcher) -> None:
    handle = launcher.spawn(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert handle.pid > 0 and _alive(handle.monitor_pid)
    conn = handle.attach(stdin=False, stdout=True, stderr=True)
    handle.start()
    out = collect(conn)
    conn.close()
    assert out == {frames.STDOUT: b"out\n", frames.STDERR: b"err\n"}
    assert conn.exit_code == 3
    status = handle.wait()
    assert status.exit_code == 3 and not status.oom_killed and status.finished_at.endswith("Z")
    assert sorted(log_text(launcher, handle)) == [("stderr", b"err\n"), ("stdout", b"out\n")]
    assert read_exit_status(handle.state_dir) == status


@needs_runc
def test_log_written_without_clients_and_fan_out(launcher: Launcher) -> None:
    handle = launcher.spawn(["sh", "-c", "sleep 0.3; seq 1 3"])
    first = handle.attach(stdin=False, stdout=True, stderr=False)
    second = handle.attach(stdin=False, stdout=True, stderr=True)
    handle.start()
    assert collect(first)[frames.STDOUT] == b"1\n2\n3\n"
    assert collect(second)[frames.STDOUT] == b"1\n2\n3\n"
    first.close()
    second.close()
    assert handle.wait().exit_code == 0
    unattached = launcher.spawn(["echo", "nobody listens"])
    unattached.start()
    assert unattached.wait().exit_code == 0
    assert log_text(launcher, unattached) == [("stdout", b"nobody listens\n")]


@needs_runc
def test_stdin_forwarded_and_eof_closes_it(launcher: Launcher) -> None:
    handle = launcher.spawn(["cat"], stdin=True, stdin_once=True)
    conn = handle.attach(stdin=True, stdout=True, stderr=True)
    handle.start()
    received: list[dict[int, bytes]] = []
    reader = threading.Thread(target=lambda: received.append(collect(conn)))
    reader.start()
    conn.send_stdin(b"hello\n")
    conn.send_stdin(b"world\n")
    conn.close_stdin()  # cat sees EOF and exits
    reader.join(10)
    conn.close()
    assert received and received[0][frames.STDOUT] == b"hello\nworld\n"
    assert handle.wait().exit_code == 0


@needs_runc
def test_sigkill_reports_137_and_sigterm_143(launcher: Launcher) -> None:
    handle = launcher.spawn(["sleep", "100"])
    handle.start()
    handle.kill(signal.SIGKILL)
    assert handle.wait(timeout=10).exit_code == 137
    trapped = launcher.spawn(["sh", "-c", "trap 'exit 143' TERM; sleep 100 & wait"])
    trapped.start()
    time.sleep(0.2)
    trapped.kill(signal.SIGTERM)
    assert trapped.wait(timeout=10).exit_code == 143
    with pytest.raises(RuntimeFailure):
        trapped.kill(signal.SIGKILL)  # the monitor is gone


@needs_runc
def test_wait_after_exit_reads_exit_json_and_connect_returns_none(launcher: Launcher) -> None:
    handle = launcher.spawn(["sh", "-c", "exit 5"])
    handle.start()
    assert wait_until(lambda: not _alive(handle.monitor_pid))
    assert not os.path.exists(os.path.join(handle.state_dir, "monitor.sock"))
    status = handle.wait()
    assert isinstance(status, ExitStatus) and status.exit_code == 5
    assert MonitorHandle.connect(handle.state_dir) is None


@needs_runc
def test_connect_after_daemon_restart(launcher: Launcher) -> None:
    handle = launcher.spawn(["sh", "-c", "read x; echo got $x"], stdin=True, stdin_once=True)
    handle.start()
    again = MonitorHandle.connect(handle.state_dir)  # a new daemon, a new handle
    assert again is not None
    assert again.pid == handle.pid and again.monitor_pid == handle.monitor_pid
    assert again.running()
    conn = again.attach(stdin=True, stdout=True, stderr=False)
    conn.send_stdin(b"restart\n")
    assert collect(conn)[frames.STDOUT] == b"got restart\n"
    conn.close()
    assert again.wait().exit_code == 0


@needs_runc
def test_missing_executable_is_127(launcher: Launcher) -> None:
    with pytest.raises(RuntimeFailure) as info:
        launcher.spawn(["/no/such/binary"])
    assert info.value.exit_code == 127
    assert "no such file or directory" in info.value.message.lower()
    with pytest.raises(RuntimeFailure) as info:
        launcher.spawn(["nosuchcommand"])
    assert info.value.exit_code == 127 and "executable file not found" in info.value.message


@needs_runc
def test_disconnecting_and_stalled_clients_do_not_block(launcher: Launcher) -> None:
    handle = launcher.spawn(["seq", "1", "400000"])  # about 2.7 MB of output
    quitter = handle.attach(stdin=False, stdout=True, stderr=True)
    staller = connect_socket(handle.state_dir)  # attaches and never reads
    staller.sendall(frames.encode_control({"op": "attach", "stdin": False, "stdout": True, "stderr": True}))
    staller.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    handle.start()
    assert quitter.read_frame() is not None
    quitter.close()
    try:
        status = handle.wait(timeout=30)
    finally:
        staller.close()
    assert status.exit_code == 0
    logged = b"".join(data for _, data in log_text(launcher, handle))
    assert logged == b"".join(b"%d\n" % i for i in range(1, 400001))


@needs_runc
def test_tty_resize_and_input(launcher: Launcher) -> None:
    handle = launcher.spawn(["sh", "-c", "read x; stty size; echo got $x"], tty=True, stdin=True, stdin_once=True)
    conn = handle.attach(stdin=True, stdout=True, stderr=True)
    handle.resize(30, 100)
    handle.start()
    conn.send_stdin(b"abc\n")
    out = collect(conn)
    conn.close()
    assert out[frames.STDERR] == b""
    assert b"30 100\r\n" in out[frames.STDOUT] and b"got abc\r\n" in out[frames.STDOUT]
    assert handle.wait().exit_code == 0
    plain = launcher.spawn(["true"])
    with pytest.raises(RuntimeFailure):
        plain.resize(10, 10)  # no tty
    plain.start()
    plain.wait()


@needs_runc
def test_monitor_rss_while_container_sleeps(launcher: Launcher) -> None:
    handle = launcher.spawn(["sleep", "30"])
    handle.start()
    status = Path(f"/proc/{handle.monitor_pid}/status").read_text()
    rss = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "RssAnon", "RssFile"))
    }
    print(f"monitor RSS while the container sleeps: {rss}")
    assert rss["VmRSS"] < 40_000
    handle.kill(signal.SIGKILL)
    assert handle.wait().exit_code == 137

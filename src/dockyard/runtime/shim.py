"""The daemon's handle on a container's monitor process (blocking; called from daemon threads).

Spawning forks `python -m dockyard.runtime.monitor` into its own session; everything after
the handshake goes over `monitor.sock` (protocol in docs/architecture.md), so a restarted
daemon gets the same handle back with `MonitorHandle.connect(state_dir)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from dockyard.runtime import frames
from dockyard.runtime.base import RuntimeFailure
from dockyard.util.fs import read_json
from dockyard.util.timefmt import rfc3339_nano

SOCKET_NAME = "monitor.sock"
PID_NAME = "monitor.pid"
EXIT_NAME = "exit.json"
MONITOR_LOG_NAME = "monitor.log"  # the monitor's own stderr (its crashes, cleanup failures)
CALL_TIMEOUT = 60.0
EXIT_FILE_GRACE = 2.0  # how long a vanished monitor may take to leave exit.json behind
UNIX_PATH_MAX = 100  # sun_path is 108 bytes; longer paths go through /proc/self/fd
MONITOR_LOST_CODE = 255


class MonitorGone(RuntimeFailure):
    """The monitor is not there any more (it exited, or its socket is gone)."""

    def __init__(self, message: str = "container monitor is not running") -> None:
        super().__init__(message, 125)


@dataclass
class ExitStatus:
    """How a container ended, as the monitor recorded it in exit.json."""

    exit_code: int
    finished_at: str
    oom_killed: bool = False
    error: str = ""


def read_exit_status(state_dir: str) -> ExitStatus | None:
    """The recorded exit of a container, or None while it has not exited."""
    record = read_json(os.path.join(state_dir, EXIT_NAME))
    if not isinstance(record, dict):
        return None
    return ExitStatus(
        exit_code=int(record.get("ExitCode", MONITOR_LOST_CODE)),
        finished_at=str(record.get("FinishedAt", "")),
        oom_killed=bool(record.get("OOMKilled", False)),
        error=str(record.get("Error") or ""),
    )


def connect_socket(state_dir: str, timeout: float | None = CALL_TIMEOUT) -> socket.socket:
    """A connection to the monitor's socket; MonitorGone when nobody listens."""
    path = os.path.join(state_dir, SOCKET_NAME)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        if len(os.fsencode(path)) < UNIX_PATH_MAX:
            sock.connect(path)
        else:
            dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")
            finally:
                os.close(dir_fd)
    except OSError as exc:
        sock.close()
        raise MonitorGone(f"container monitor is not running: {exc}") from None
    return sock


class AttachConnection:
    """One attach stream: output frames in, stdin out. One thread may read while another writes."""

    def __init__(self, sock: socket.socket, pid: int = 0) -> None:
        self._sock = sock
        self.pid = pid  # an exec's process (host pid); 0 for an attach
        self.exit_code: int | None = None
        self._ended = False

    def read_frame(self) -> tuple[int, bytes] | None:
        """The next (stream kind, data) of output; None once the container exited (then
        `exit_code` is set) or the connection closed."""
        while not self._ended:
            try:
                frame = frames.read_frame(self._sock)
            except (OSError, frames.FrameError):
                frame = None
            if frame is None:
                self._ended = True
                break
            kind, payload = frame
            if kind != frames.CONTROL:
                return kind, payload
            message = frames.decode_control(payload)
            if "exit" in message:
                self.exit_code = int(message["exit"])
                self._ended = True
        return None

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Iterate over (kind, data) output frames until the end of the stream."""
        while (frame := self.read_frame()) is not None:
            yield frame

    def send_stdin(self, data: bytes) -> None:
        """Forward input to the container (no-op for empty data: that would mean EOF)."""
        if data:
            self._sock.sendall(frames.encode_frame(frames.STDIN, data))

    def close_stdin(self) -> None:
        """Tell the monitor this client's input ended (closes the container's stdin with
        --stdin-once); output keeps flowing."""
        with contextlib.suppress(OSError):
            self._sock.sendall(frames.encode_frame(frames.STDIN, b""))

    def close(self) -> None:
        """Detach; wakes up a thread blocked in read_frame."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def __enter__(self) -> AttachConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class MonitorHandle:
    """Control of one container's monitor: start, attach, wait, kill, resize."""

    def __init__(self, state_dir: str, pid: int, monitor_pid: int) -> None:
        self.state_dir = state_dir
        self.pid = pid  # the container's init, as seen from the host
        self.monitor_pid = monitor_pid

    @classmethod
    def spawn(
        cls,
        *,
        container_id: str,
        state_dir: str,
        bundle: str,
        runtime: str,
        runtime_root: str | None,
        tty: bool,
        open_stdin: bool,
        stdin_once: bool,
        log_path: str | None,
        log_max_size: int = 0,
        log_max_files: int = 1,
    ) -> MonitorHandle:
        """Start a monitor that creates the container (init waiting for `start`).

        Raises RuntimeFailure with docker's exit code (127 missing executable, ...) when the
        runtime cannot create it."""
        args = ["--id", container_id, "--bundle", bundle, "--state-dir", state_dir, "--runtime", runtime]
        if runtime_root:
            args += ["--runtime-root", runtime_root]
        if log_path:
            args += ["--log", log_path, "--log-max-size", str(log_max_size), "--log-max-files", str(log_max_files)]
        for flag, wanted in (("--tty", tty), ("--stdin", open_stdin), ("--stdin-once", stdin_once)):
            if wanted:
                args.append(flag)
        line = _launch_monitor(args, state_dir)
        try:
            answer = json.loads(line)
        except ValueError:
            raise RuntimeFailure(
                f"container monitor failed to start (see {os.path.join(state_dir, MONITOR_LOG_NAME)})"
            ) from None
        if "error" in answer:
            raise RuntimeFailure(str(answer["error"]), int(answer.get("exit_code", 125)))
        return cls(state_dir, int(answer["pid"]), int(answer.get("monitor_pid", 0)))

    @classmethod
    def connect(cls, state_dir: str) -> MonitorHandle | None:
        """The handle of a monitor that is still running (after a daemon restart), else None."""
        try:
            info = cls._request(state_dir, {"op": "info"})
        except RuntimeFailure:
            return None
        if "pid" not in info:
            return None
        return cls(state_dir, int(info["pid"]), int(info.get("monitor_pid", 0)))

    # ------------------------------------------------------------------------ operations

    def start(self) -> None:
        """Let the container's process run; RuntimeFailure (with exit code) if exec fails."""
        self._call({"op": "start"})

    def attach(self, stdin: bool, stdout: bool, stderr: bool) -> AttachConnection:
        """Attach to the container's stdio; output produced from now on is delivered."""
        return self._open_stream({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr})

    def exec(
        self,
        exec_id: str,
        process: dict[str, Any],
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        console_size: tuple[int, int] | None = None,
    ) -> AttachConnection:
        """Start `process` (an OCI process object) in the running container. The connection carries
        its output (and its stdin when asked for) and ends with its exit code; RuntimeFailure
        (docker's 126/127) when it cannot start."""
        request: dict[str, Any] = {
            "op": "exec",
            "id": exec_id,
            "process": process,
            "stdin": stdin,
            "stdout": stdout,
            "stderr": stderr,
        }
        if console_size:
            request["height"], request["width"] = console_size
        return self._open_stream(request)

    def _open_stream(self, request: dict[str, Any]) -> AttachConnection:
        sock = connect_socket(self.state_dir)
        try:
            sock.sendall(frames.encode_control(request))
            ack = _read_control(sock)
        except (OSError, frames.FrameError, MonitorGone):
            sock.close()
            raise MonitorGone() from None
        if "error" in ack:
            sock.close()
            raise RuntimeFailure(str(ack["error"]), int(ack.get("exit_code", 125)))
        sock.settimeout(None)
        return AttachConnection(sock, int(ack.get("pid", 0)))

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Block until the container exited; works after the monitor is gone (exit.json)."""
        try:
            reply = self._request(self.state_dir, {"op": "wait"}, timeout)
        except MonitorGone:
            return self._status_from_file()
        return ExitStatus(
            exit_code=int(reply["exit"]),
            finished_at=str(reply.get("finished_at", "")),
            oom_killed=bool(reply.get("oom_killed", False)),
            error=str(reply.get("error") or ""),
        )

    def kill(self, sig: int, exec_id: str | None = None) -> None:
        """Send a signal to the container's init (or to one of its execs)."""
        self._call({"op": "kill", "signal": int(sig), **({"exec": exec_id} if exec_id else {})})

    def resize(self, height: int, width: int, exec_id: str | None = None) -> None:
        """Set the terminal size of the container (or of one of its execs)."""
        self._call(
            {"op": "resize", "height": int(height), "width": int(width), **({"exec": exec_id} if exec_id else {})}
        )

    def running(self) -> bool:
        """Whether the monitor still serves (the container has not finished exiting)."""
        try:
            return bool(self._request(self.state_dir, {"op": "info"}).get("running"))
        except RuntimeFailure:
            return False

    # ------------------------------------------------------------------------ plumbing

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        reply = self._request(self.state_dir, request)
        if "error" in reply:
            raise RuntimeFailure(str(reply["error"]), int(reply.get("exit_code", 125)))
        return reply

    @staticmethod
    def _request(state_dir: str, request: dict[str, Any], timeout: float | None = CALL_TIMEOUT) -> dict[str, Any]:
        """One request, one control-frame answer, on a fresh connection."""
        with connect_socket(state_dir, CALL_TIMEOUT) as sock:
            try:
                sock.sendall(frames.encode_control(request))
                sock.settimeout(timeout)
                return _read_control(sock)
            except TimeoutError:
                raise
            except (OSError, frames.FrameError):
                raise MonitorGone() from None

    def _status_from_file(self) -> ExitStatus:
        deadline = time.monotonic() + EXIT_FILE_GRACE
        while True:
            status = read_exit_status(self.state_dir)
            if status is not None:
                return status
            if time.monotonic() >= deadline:
                return ExitStatus(
                    MONITOR_LOST_CODE,
                    rfc3339_nano(),
                    False,
                    "container monitor exited without recording an exit status",
                )
            time.sleep(0.02)


def _read_control(sock: socket.socket) -> dict[str, Any]:
    """The next control frame; MonitorGone if the connection ends first."""
    while True:
        frame = frames.read_frame(sock)
        if frame is None:
            raise MonitorGone()
        kind, payload = frame
        if kind == frames.CONTROL:
            return frames.decode_control(payload)


def _launch_monitor(args: list[str], state_dir: str) -> bytes:
    """Start a monitor (forked from the warm zygote, or a fresh interpreter as a fallback) and
    return its handshake line."""
    from dockyard.runtime.zygote_client import launch_monitor

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with open(os.path.join(state_dir, MONITOR_LOG_NAME), "ab") as monitor_log, os.fdopen(read_fd, "rb") as reader:
        try:
            if not launch_monitor(args, write_fd, monitor_log.fileno(), state_dir):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dockyard.runtime.monitor", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=monitor_log,
                    start_new_session=True,
                    cwd=state_dir,
                )
                os.close(write_fd)
                write_fd = -1
                line = reader.readline()
                proc.wait()  # the monitor forked: this reaps only its short-lived parent
                return line
        finally:
            if write_fd >= 0:
                os.close(write_fd)
        return reader.readline()

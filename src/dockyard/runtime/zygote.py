"""A warm process that forks container monitors on the daemon's behalf.

Starting a fresh Python interpreter for every monitor costs ~50 ms (interpreter start plus the
runtime's imports) and ~9 MB of private memory. The zygote pays that once: it imports the monitor and
the runtime backends, then forks one child per container. A fork takes about a millisecond and the
child shares the zygote's pages copy-on-write, so each monitor's own memory is what it writes.

The daemon talks to the zygote over a socketpair: one request per monitor, the monitor's argv as JSON
plus two file descriptors (handshake pipe, monitor log) passed with SCM_RIGHTS. The zygote exits when
the daemon's end closes; monitors it forked are independent sessions and live on.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading

log = logging.getLogger("dockyard.zygote")

_MAX_REQUEST = 1 << 16


def _serve(sock: socket.socket) -> None:
    """Zygote main loop: fork a monitor per request until the daemon hangs up."""
    import dockyard.runtime.monitor as monitor

    for backend in (
        "dockyard.runtime.builtin.runtime",
        "dockyard.runtime.oci_cli",
        "dockyard.runtime.jsonlog",
        "dockyard.util.fs",
        "dockyard.util.timefmt",
        "json",
    ):
        with contextlib.suppress(ImportError):
            __import__(backend)
    with contextlib.suppress(Exception):  # a cache only: monitors compile what is missing
        from dockyard.runtime.seccomp import warm_default

        warm_default()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    # Everything imported so far is shared with every monitor. Moving it to the GC's permanent
    # generation keeps the children's collections from touching (and so copying) those pages.
    gc.collect()
    gc.freeze()
    while True:
        fds = array.array("i")
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(_MAX_REQUEST, socket.CMSG_LEN(2 * fds.itemsize))
        except InterruptedError:
            continue
        if not data:
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _become_monitor(sock, list(fds), request, monitor.main)
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode())


def _become_monitor(sock: socket.socket, fds: list[int], request: dict, monitor_main) -> None:
    """In the forked child: a clean session with the monitor's stdio, then the monitor itself."""
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        handshake, monitor_log = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(handshake, 1)
        os.dup2(monitor_log, 2)
        for fd in (devnull, handshake, monitor_log):
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        code = monitor_main(request["argv"], detached=True)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Zygote:
    """The daemon's handle on its zygote process (thread-safe; restarted if it dies)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None

    def _ensure(self) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            return self._sock
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.runtime.zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
        )
        theirs.close()
        self._sock = ours
        return ours

    def launch(self, argv: list[str], handshake_fd: int, log_fd: int, cwd: str) -> None:
        """Fork a monitor running `argv` (the monitor's own arguments) with its stdout on
        `handshake_fd` and stderr on `log_fd`."""
        request = json.dumps({"argv": argv, "cwd": cwd}).encode()
        with self._lock:
            sock = self._ensure()
            fds = array.array("i", [handshake_fd, log_fd])
            sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
            reply = sock.recv(4096)
        if not reply:
            raise OSError("monitor zygote exited")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


_shared: Zygote | None = None
_shared_lock = threading.Lock()


def launch_monitor(argv: list[str], handshake_fd: int, log_fd: int, cwd: str) -> bool:
    """Start a monitor through the shared zygote; False when the zygote cannot be used
    (the caller then starts a fresh interpreter)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Zygote()
        zygote = _shared
    try:
        zygote.launch(argv, handshake_fd, log_fd, cwd)
        return True
    except OSError as exc:
        log.warning("monitor zygote unavailable, starting the monitor directly: %s", exc)
        zygote.close()
        return False


def shutdown() -> None:
    """Stop the shared zygote (daemon shutdown); running monitors are not affected."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


if __name__ == "__main__":
    _serve(socket.socket(fileno=int(sys.argv[1])))

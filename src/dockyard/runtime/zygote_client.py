"""The daemon's side of the monitor zygote (see zygote.py): start it, ask it to fork monitors.

Kept apart from the zygote's own module so that subprocess, threading and logging, which only the
daemon needs here, are not loaded in the zygote and so in every monitor it forks.
"""

from __future__ import annotations

import array
import json
import logging
import socket
import subprocess
import sys
import threading

log = logging.getLogger("dockyard.zygote")


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

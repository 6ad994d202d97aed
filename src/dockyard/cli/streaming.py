"""Interactive plumbing for run/start/attach: output pump, stdin forwarding, raw tty, resize, sig-proxy."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator

from dockyard.client.streams import STDERR, SYSTEMERR

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from dockyard.client.transport import HijackedConnection

# Signals not proxied to the container (docker's signal.ForwardAllSignals skips these).
_NOT_PROXIED = {
    "SIGCHLD",
    "SIGPIPE",
    "SIGURG",
    "SIGWINCH",
    "SIGKILL",
    "SIGSTOP",
    "SIGCONT",
    "SIGTTIN",
    "SIGTTOU",
    "SIGTSTP",
}


def copy_output(frames: Iterator[tuple[int, bytes]], stdout: BinaryIO, stderr: BinaryIO) -> None:
    """Write demultiplexed frames to the local stdout/stderr, flushing each so output is live."""
    for stream, data in frames:
        sink = stderr if stream in (STDERR, SYSTEMERR) else stdout
        sink.write(data)
        sink.flush()


def forward_stdin(
    conn: HijackedConnection, fd: int = 0, detach_keys: bytes = b"", detached: threading.Event | None = None
) -> threading.Thread:
    """Copy local stdin to the hijacked socket in a thread; half-close at EOF so output keeps flowing.

    With `detach_keys` (a tty session), typing them sets `detached` and ends the session (docker's
    escape proxy); the process keeps running."""

    def run() -> None:
        matched = 0
        try:
            while True:
                data = os.read(fd, 32768)
                if not data:
                    break
                for byte in data if detach_keys else b"":
                    matched = matched + 1 if byte == detach_keys[matched] else int(byte == detach_keys[0])
                    if matched == len(detach_keys):
                        if detached is not None:
                            detached.set()
                        with contextlib.suppress(OSError):
                            conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the output reader
                        return
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close_write()

    thread = threading.Thread(target=run, name="stdin-forward", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def raw_terminal(fd: int = 0) -> Iterator[None]:
    """Put a terminal in raw mode for the duration (docker -it), restoring it even on errors."""
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    """(height, width) of the terminal on `fd`, or None when it is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def monitor_resize(resize: Callable[[int, int], None], fd: int = 1) -> Callable[[], None]:
    """Send the size now and on every SIGWINCH; returns a function restoring the old handler."""

    def send() -> None:
        size = terminal_size(fd)
        if size:
            with contextlib.suppress(Exception):
                resize(*size)

    send()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGWINCH, lambda *_: threading.Thread(target=send, daemon=True).start())
    return lambda: signal.signal(signal.SIGWINCH, previous)


def proxy_signals(kill: Callable[[int], None]) -> Callable[[], None]:
    """Forward catchable signals to the container as /kill?signal=N; returns a restore function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, object] = {}

    def handler(signum: int, _frame: object) -> None:
        threading.Thread(target=lambda: _quiet(kill, signum), daemon=True).start()

    for sig in signal.Signals:
        if sig.name in _NOT_PROXIED:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (OSError, ValueError, RuntimeError):
            continue

    def restore() -> None:
        for sig, old in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, old)  # type: ignore[arg-type]

    return restore


def _quiet(function: Callable[[int], None], value: int) -> None:
    with contextlib.suppress(Exception):
        function(value)


def detach_key_bytes(spec: str | None) -> bytes:
    """docker's --detach-keys ("ctrl-p,ctrl-q" by default) as the bytes the terminal sends."""
    from dockyard.daemon.attach import parse_detach_keys
    from dockyard.errors import InvalidParameter

    try:
        return parse_detach_keys(spec)
    except InvalidParameter as exc:
        from dockyard.cli.flags import StatusError

        raise StatusError(125, f"dockyard: {exc.message}") from None


def stdio_binary() -> tuple[BinaryIO, BinaryIO]:
    return sys.stdout.buffer, sys.stderr.buffer

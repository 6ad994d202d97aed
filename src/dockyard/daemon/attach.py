"""Bridge a client's hijacked attach connection to the container monitor's attach stream.

Docker's protocol: output goes to the client framed with the 8-byte stdcopy header when the
container has no tty, raw when it has one; bytes the client sends are the container's stdin; the
client half-closes its side when its stdin ends and keeps reading output.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dockyard.runtime.frames import CONTROL, STDERR, STDOUT, encode_frame

log = logging.getLogger("dockyard.attach")

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q


def parse_detach_keys(spec: str | None) -> bytes:
    """docker's detachKeys syntax: "ctrl-p,ctrl-q", "a,ctrl-x"..."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch, ord(ch) - ord("a") + 1))
        elif len(key) == 1:
            out.append(ord(key))
        else:
            from dockyard.errors import InvalidParameter

            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class AttachSession:
    """One attached client. `connect(monitor)` may happen later than creation (attach before start)."""

    def __init__(self, client: Any, *, tty: bool, stdin: bool, stdout: bool, stderr: bool, detach_keys: bytes) -> None:
        self.client = client
        self.tty = tty
        self.want_stdin = stdin
        self.want_stdout = stdout
        self.want_stderr = stderr
        self.detach_keys = detach_keys
        self.done = threading.Event()
        self._conn: Any = None

    def connect(self, monitor: Any) -> None:
        """Open the monitor stream now (before the container starts, so no output is missed)."""
        try:
            self._conn = monitor.attach(self.want_stdin, self.want_stdout, self.want_stderr)
        except Exception as exc:
            log.warning("attach to monitor failed: %s", exc)
            self.done.set()
            return
        threading.Thread(target=self._pump_output, daemon=True).start()
        if self.want_stdin:
            threading.Thread(target=self._pump_input, daemon=True).start()

    def cancel(self) -> None:
        self.done.set()

    def _pump_output(self) -> None:
        conn = self._conn
        try:
            while True:
                frame = conn.read_frame()
                if frame is None:
                    break
                kind, data = frame
                if kind == CONTROL:
                    continue
                if kind not in (STDOUT, STDERR) or not data:
                    continue
                self.client.sendall(data if self.tty else encode_frame(kind, data))
        except (OSError, ValueError) as exc:
            log.debug("attach output ended: %s", exc)
        finally:
            conn.close()
            self.done.set()

    def _pump_input(self) -> None:
        conn = self._conn
        keys = self.detach_keys if self.tty else b""
        matched = 0
        try:
            while not self.done.is_set():
                data = self.client.recv(65536)
                if not data:
                    conn.close_stdin()
                    return
                if keys:
                    for byte in data:
                        matched = matched + 1 if byte == keys[matched] else (1 if byte == keys[0] else 0)
                        if matched == len(keys):
                            self.done.set()  # detach: leave the container running
                            conn.close()
                            return
                conn.send_stdin(data)
        except OSError as exc:
            log.debug("attach input ended: %s", exc)

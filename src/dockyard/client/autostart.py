"""Start the daemon in the background when the default socket does not answer (root only)."""

from __future__ import annotations

import os
import socket
import sys

from dockyard.client.transport import DEFAULT_HOST, Host, Transport

TYPE_CHECKING = False  # subprocess and time are imported only when a daemon has to be started
if TYPE_CHECKING:
    import subprocess

DEFAULT_DATA_ROOT = "/var/lib/dockyard"
START_TIMEOUT = 10.0


def socket_answers(path: str) -> bool:
    """True when something accepts connections on the unix socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def autostart_allowed(host: Host) -> bool:
    return host.url == DEFAULT_HOST and os.environ.get("DOCKYARD_NO_AUTOSTART") != "1" and os.geteuid() == 0


def spawn_daemon() -> subprocess.Popen[bytes]:
    """Launch `python -m dockyard daemon` detached, logging to <data-root>/daemon.log."""
    import subprocess

    data_root = os.environ.get("DOCKYARD_DATA_ROOT") or DEFAULT_DATA_ROOT
    os.makedirs(data_root, mode=0o711, exist_ok=True)
    command = [sys.executable, "-m", "dockyard", "daemon"]
    if os.environ.get("DOCKYARD_DATA_ROOT"):
        command += ["--data-root", data_root]
    with open(os.path.join(data_root, "daemon.log"), "ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )


def wait_for_ping(host: Host, timeout: float = START_TIMEOUT, process: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll /_ping until it answers, the timeout passes or the spawned process died."""
    import time

    transport = Transport(host, timeout=2.0)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if socket_answers(host.address):
            try:
                transport.request("GET", "/_ping").content()
                return True
            except Exception:
                pass
        if process is not None and process.poll() is not None:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return False


def ensure_daemon(host: Host) -> bool:
    """Make sure the daemon answers at `host`, starting it when allowed; True if it (now) answers."""
    if host.scheme != "unix" or socket_answers(host.address):
        return True
    if not autostart_allowed(host):
        return False
    return wait_for_ping(host, process=spawn_daemon())

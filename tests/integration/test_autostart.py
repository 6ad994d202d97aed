"""The CLI starts a daemon on the default socket when none answers (root), unless told not to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.daemon import DaemonEnv, host_cleanup

DEFAULT_SOCKET = Path("/run/dockyard/dockyard.sock")


@pytest.fixture
def free_default_socket(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("autostart is for root")
    if DEFAULT_SOCKET.exists():
        pytest.skip("a dockyard daemon already uses the default socket")
    data_root = tmp_path / "data"
    yield data_root
    for line in subprocess.run(
        ["pgrep", "-f", f"dockyard daemon --data-root {data_root}"], capture_output=True, text=True
    ).stdout.split():
        os.kill(int(line), signal.SIGTERM)
    deadline = time.time() + 10
    while DEFAULT_SOCKET.exists() and time.time() < deadline:
        time.sleep(0.1)
    host_cleanup(DaemonEnv(tmp_path, data_root, Path("/run/dockyard"), DEFAULT_SOCKET))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, env=env, timeout=60)


def test_no_autostart_when_disabled(free_default_socket: Path):
    env = {k: v for k, v in os.environ.items() if k != "DOCKYARD_HOST"}
    env.update(DOCKYARD_NO_AUTOSTART="1", DOCKYARD_DATA_ROOT=str(free_default_socket))
    proc = _cli(env, "ps")
    assert proc.returncode == 1
    assert b"Cannot connect to the dockyard daemon at unix:///run/dockyard/dockyard.sock" in proc.stderr
    assert not DEFAULT_SOCKET.exists()


def test_autostart_on_first_use(free_default_socket: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKYARD_HOST", "DOCKYARD_NO_AUTOSTART")}
    env["DOCKYARD_DATA_ROOT"] = str(free_default_socket)
    proc = _cli(env, "ps", "-a")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"CONTAINER ID")
    assert DEFAULT_SOCKET.exists() and DEFAULT_SOCKET.stat().st_mode & 0o002 == 0
    assert (free_default_socket / "daemon.log").exists()
    assert _cli(env, "version").returncode == 0  # the same daemon answers again, none started twice

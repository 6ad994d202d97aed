"""A private real dockerd (Debian's docker.io) on its own data root and socket: the oracle to compare with.

It never touches the host's network: no bridge, no iptables. Used by optional tests and by bench/.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers.daemon import unmount_under


def dockerd_available() -> bool:
    return shutil.which("dockerd") is not None and shutil.which("docker") is not None


class PrivateDockerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.cli = ["docker", "-H", f"unix://{self.sock}"]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "dockerd.log", "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "dockerd",
                    "--data-root",
                    str(self.base / "data"),
                    "--exec-root",
                    str(self.base / "exec"),
                    "-H",
                    f"unix://{self.sock}",
                    "--pidfile",
                    str(self.base / "docker.pid"),
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--containerd-namespace",
                    "dyoracle",
                    "--containerd-plugins-namespace",
                    "dyoraclep",
                    "--cgroup-parent",
                    "dyoracle",
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.time() + timeout
        while self.run("version").returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("dockerd did not start: " + (self.base / "dockerd.log").read_text()[-1500:])
            time.sleep(0.3)

    def run(self, *args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.cli, *args], capture_output=True, check=check, **kw)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            ids = self.run("ps", "-aq").stdout.decode().split()
            if ids:
                self.run("rm", "-f", *ids)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for cg in Path("/sys/fs/cgroup").glob("*/dyoracle"):
            with contextlib.suppress(OSError):
                cg.rmdir()
        unmount_under(self.base)

"""A dockyard daemon on a temporary data root and socket, driven through the CLI (tests and bench)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DaemonEnv:
    base: Path
    data_root: Path
    exec_root: Path
    socket: Path
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKYARD_HOST"] = self.host
        env["DOCKYARD_NO_AUTOSTART"] = "1"
        return env

    def cli(
        self, *args: str, input: bytes | None = None, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `dockyard ARGS` against this daemon."""
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard", *args], input=input, capture_output=True, env=self.env(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
        return proc

    def out(self, *args: str, **kw) -> str:
        return self.cli(*args, check=True, **kw).stdout.decode()

    def start(self) -> None:
        with open(self.base / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dockyard",
                    "daemon",
                    "--data-root",
                    str(self.data_root),
                    "--exec-root",
                    str(self.exec_root),
                    "-H",
                    self.host,
                ],
                stdout=log,
                stderr=log,
                env=self.env(),
            )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.socket.exists() and self.cli("version").returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon died: {(self.base / 'daemon.log').read_text()}")
            time.sleep(0.1)
        raise RuntimeError("daemon did not come up")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Kill the daemon the hard way (SIGKILL), as a crash would."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def host_cleanup(env: DaemonEnv) -> list[str]:
    """Force-clean whatever a failed test left; returns what had to be cleaned."""
    leftovers: list[str] = []
    ids = [d.name for d in (env.data_root / "containers").glob("*")] if env.data_root.exists() else []
    for cid in ids:  # container processes, through their cgroups
        for procs in Path("/sys/fs/cgroup").glob(f"*/dockyard/{cid}/cgroup.procs"):
            for pid in procs.read_text().split():
                leftovers.append(f"container process {pid}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    for pid in ours(env.base):  # monitors (and the zygote) run with their cwd in our data root
        leftovers.append(f"process {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        time.sleep(0.2)
    leftovers += [f"mount {m}" for m in unmount_under(env.base)]
    # Only this daemon's containers' cgroups (another daemon may be creating its own right now),
    # then the shared parent, which rmdir leaves alone while anything is still in it.
    mine = [cg for cid in ids for cg in Path("/sys/fs/cgroup").glob(f"*/dockyard/{cid}")]
    for cg in [*mine, *Path("/sys/fs/cgroup").glob("*/dockyard")]:
        with contextlib.suppress(OSError):
            cg.rmdir()
    return leftovers


def ours(base: Path) -> list[int]:
    """Pids of processes whose working directory lies under `base`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(base) or cwd.startswith(str(base) + "/"):
            found.append(int(proc.name))
    return found


def unmount_under(base: Path) -> list[str]:
    """Lazily unmount everything mounted at or below `base` (deepest first); returns what it unmounted."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    found = sorted((m for m in mounts if m == str(base) or m.startswith(str(base) + "/")), key=len, reverse=True)
    for mnt in found:
        subprocess.run(["umount", "-l", mnt], check=False)
    return found

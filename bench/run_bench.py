"""Benchmarks for issue 2: `run --rm busybox true` latency and the memory of 50 idle containers.

dockyard is compared side by side with docker (a private dockerd on its own data root and socket,
no bridge, no iptables) and podman (its own root), when they are installed. The same busybox rootfs
is imported into each; runs are interleaved so that machine noise hits all engines alike.

    sudo .venv/bin/python bench/run_bench.py [--runs 20] [--containers 50]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench.common import table
from tests.helpers.daemon import DaemonEnv, host_cleanup, unmount_under
from tests.helpers.dockerd import PrivateDockerd
from tests.helpers.rootfs import busybox_rootfs_tar

METRICS = {
    # Proportional set size: private pages plus a fair share of shared ones (shared libraries,
    # copy-on-write pages of a forked parent): the headline, summing it counts every page once.
    "PSS": ("Pss",),
    # Resident set size: every shared page counted again in each process (what `ps` shows).
    "RSS": ("Rss",),
    # Unique set size: only the pages no other process maps (what killing the process frees).
    "USS": ("Private_Clean", "Private_Dirty"),
}


def memory_kb(pid: int, metric: str) -> int:
    """One process's memory in kB by METRICS[metric], from /proc/PID/smaps_rollup (0 if gone)."""
    fields = METRICS[metric]
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in fields:
                    total += int(rest.split()[0])
    except OSError:
        pass
    return total


def pids_matching(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Engine:
    name = ""

    def run_cmd(self) -> list[str]:
        raise NotImplementedError

    def time_run(self) -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(self.run_cmd(), capture_output=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name}: {proc.stderr.decode()[-500:]}")
        return elapsed


class Dockyard(Engine):
    name = "dockyard"

    def __init__(self, base: Path, tar: Path) -> None:
        self.env = DaemonEnv(base, base / "data", base / "run", base / "d.sock")
        self.env.start()
        self.env.out("import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest")
        # The console script, as users run it (python -m would add runpy's start-up cost).
        script = Path(sys.executable).with_name("dockyard")
        self.cli = [
            str(script) if script.exists() else sys.executable,
            *([] if script.exists() else ["-m", "dockyard"]),
            "-H",
            self.env.host,
        ]

    def run_cmd(self) -> list[str]:
        # --network none on every engine: the private dockerd has no bridge (bench/network_bench.py
        # measures bridge networking side by side).
        return [*self.cli, "run", "--rm", "--network", "none", "busybox", "true"]

    def start_sleepers(self, n: int) -> None:
        for _ in range(n):
            subprocess.run(
                [*self.cli, "run", "-d", "--network", "none", "busybox", "sleep", "1000"],
                check=True,
                capture_output=True,
            )

    def processes(self) -> tuple[list[int], list[int]]:
        monitors = []
        for pid_file in (self.env.data_root / "containers").glob("*/monitor.pid"):
            with contextlib.suppress(ValueError, OSError):
                monitors.append(int(pid_file.read_text().strip()))
        zygotes = [p for p in pids_matching("dockyard.runtime.zygote") if _parent(p) == self.env.proc.pid]
        return [self.env.proc.pid, *zygotes], monitors

    def close(self) -> None:
        ids = self.env.cli("ps", "-aq").stdout.decode().split()
        if ids:
            self.env.cli("rm", "-f", *ids, timeout=300)
        self.env.stop()
        host_cleanup(self.env)


class Docker(Engine):
    name = "docker"

    def __init__(self, base: Path, tar: Path) -> None:
        self.dockerd = PrivateDockerd(base)
        self.dockerd.start()
        self.cli = self.dockerd.cli
        self.dockerd.run("import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest", check=True)

    def run_cmd(self) -> list[str]:
        return [*self.cli, "run", "--rm", "--network", "none", "busybox", "true"]

    def start_sleepers(self, n: int) -> None:
        for _ in range(n):
            self.dockerd.run("run", "-d", "--network", "none", "busybox", "sleep", "1000", check=True)

    def processes(self) -> tuple[list[int], list[int]]:
        assert self.dockerd.proc is not None
        containerd = [p for p in pids_matching("containerd --config") if str(self.dockerd.base) in _cmdline(p)]
        shims = [p for p in pids_matching("containerd-shim") if "dyoracle" in _cmdline(p)]
        return [self.dockerd.proc.pid, *containerd], shims

    def close(self) -> None:
        self.dockerd.stop()


class Podman(Engine):
    name = "podman"

    def __init__(self, base: Path, tar: Path) -> None:
        self.base = base
        self.cli = [
            "podman",
            "--root",
            str(base / "root"),
            "--runroot",
            str(base / "runroot"),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]
        subprocess.run(
            [*self.cli, "import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest"], check=True, capture_output=True
        )

    def run_cmd(self) -> list[str]:
        return [*self.cli, "run", "--rm", "--network", "none", "--ulimit", "host", "busybox", "true"]

    def close(self) -> None:
        subprocess.run([*self.cli, "rm", "-af"], capture_output=True)
        subprocess.run([*self.cli, "system", "reset", "-f"], capture_output=True)
        unmount_under(self.base)  # podman leaves its storage root mounted (overlay) after a reset


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def bench_latency(engines: list[Engine], runs: int) -> str:
    usable = []
    for e in engines:  # warm-up; an engine that cannot run here is reported and left out
        try:
            e.time_run()
            usable.append(e)
        except RuntimeError as exc:
            print(f"(left out: {str(exc).strip()})")
    engines[:] = usable
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    for _ in range(runs):
        for e in engines:
            samples[e.name].append(e.time_run())
    docker_median = statistics.median(samples["docker"]) if "docker" in samples else None
    rows = [["engine", "median ms", "p90 ms", "min ms", "vs docker"]]
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        rows.append(
            [
                name,
                f"{median * 1000:.0f}",
                f"{values[int(len(values) * 0.9) - 1] * 1000:.0f}",
                f"{values[0] * 1000:.0f}",
                f"{median / docker_median:.2f}x" if docker_median else "-",
            ]
        )
    return table(rows)


def bench_memory(engines: list[Engine], count: int) -> str:
    """Daemon-side growth plus the per-container processes (monitors / containerd-shims), in each
    metric of METRICS; PSS is the fair comparison, RSS and USS bracket it."""
    header = ["engine", "metric", f"daemon growth kB ({count} ctrs)", "per-container processes kB", "total kB"]
    rows = [[*header, "per container kB"]]
    for e in engines:
        if not hasattr(e, "start_sleepers"):
            continue
        daemons, _ = e.processes()
        before = {m: sum(memory_kb(p, m) for p in daemons) for m in METRICS}
        e.start_sleepers(count)
        time.sleep(2)
        daemons, containers = e.processes()
        for metric in METRICS:
            growth = sum(memory_kb(p, metric) for p in daemons) - before[metric]
            per_container = sum(memory_kb(p, metric) for p in containers)
            total = growth + per_container
            rows.append([e.name, metric, str(growth), str(per_container), str(total), f"{total / count:.0f}"])
    return table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--skip", action="append", default=[], help="engine to leave out (docker, podman)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dyb-", dir="/tmp"))
    engines: list[Engine] = []
    try:
        tar = busybox_rootfs_tar(base / "busybox.tar", base / "build")
        (base / "dy").mkdir()
        engines.append(Dockyard(base / "dy", tar))
        if shutil.which("dockerd") and "docker" not in args.skip:
            engines.append(Docker(base / "docker", tar))
        if shutil.which("podman") and "podman" not in args.skip:
            (base / "podman").mkdir()
            engines.append(Podman(base / "podman", tar))
        print(f"== run --rm busybox true: {args.runs} interleaved runs each")
        print(bench_latency(engines, args.runs))
        print(f"\n== memory of {args.containers} running `sleep` containers")
        print(bench_memory(engines, args.containers))
    finally:
        for e in engines:
            try:
                e.close()
            except Exception as exc:  # keep cleaning the others
                print(f"cleanup {e.name}: {exc}", file=sys.stderr)
        unmount_under(base)  # whatever an engine that failed half way left mounted
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

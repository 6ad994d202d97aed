"""Issue 3's benchmarks: the real docker CLI against dockyard vs against a private dockerd.

Measures, side by side in one run with interleaved repetitions:
- `docker run --rm busybox true` (target: dockyard at most half of dockerd's median);
- `docker exec CID true` round trip (same target);
- `docker logs` of a ~100 MB json-file log, in MB/s (target: at least dockerd's throughput).

    sudo .venv/bin/python bench/compat_bench.py [--runs 15] [--log-mb 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench.common import comparison_rows, start_engines, table, tear_down, timed


def wait_exit(cli: list[str], cid: str) -> None:
    subprocess.run([*cli, "wait", cid], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--log-mb", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("docker"):
        print("run as root with the docker CLI installed", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dyc-", dir="/tmp"))
    dy = dockerd = None
    try:
        dy, dockerd, engines = start_engines(base)
        net = {name: ["--network", "none"] for name in engines}  # dockerd here has no bridge
        sleepers = {
            name: subprocess.run(
                [*cli, "run", "-d", *net[name], "busybox", "sleep", "1000"], check=True, capture_output=True, text=True
            ).stdout.strip()
            for name, cli in engines.items()
        }
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for name, cli in engines.items():
                samples.setdefault(("run --rm true", name), []).append(
                    timed([*cli, "run", "--rm", *net[name], "busybox", "true"])
                )
                samples.setdefault(("exec true", name), []).append(timed([*cli, "exec", sleepers[name], "true"]))
        lines = args.log_mb * 10_000  # 100-byte lines
        line = "0123456789" * 10
        script = f"yes {line} | head -n {lines}"
        throughput: dict[str, float] = {}
        for name, cli in engines.items():
            cid = subprocess.run(
                [*cli, "run", "-d", *net[name], "busybox", "sh", "-c", script],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            wait_exit(cli, cid)
            best = min(timed([*cli, "logs", cid]) for _ in range(3))
            throughput[name] = args.log_mb * 1.01 / best
        version = subprocess.run(["docker", "--version"], capture_output=True, text=True).stdout.strip()
        print(f"== the real docker CLI ({version}), {args.runs} interleaved runs")
        rows = comparison_rows(samples, "dockerd", "operation")
        for name, mbps in throughput.items():
            ref = throughput.get("dockerd")
            rows.append([f"logs {args.log_mb} MB", name, f"{mbps:.0f} MB/s", "", f"{mbps / ref:.2f}x" if ref else "-"])
        print(table(rows))
    finally:
        tear_down(dy, dockerd, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

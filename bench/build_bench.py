"""Build benchmark: `docker build` (classic builder, the real docker CLI) against dockyard and against a
private dockerd, side by side with interleaved runs: a cold build (--no-cache) and a fully cached one.

The Dockerfile: FROM busybox, ENV, WORKDIR, COPY of a 200-file tree, three RUN steps, CMD. RUN steps use
`--network none` on both (the private dockerd has no bridge).

    sudo .venv/bin/python bench/build_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench.common import comparison_rows, start_engines, table, tear_down, timed

DOCKERFILE = """\
FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY tree/ /app/tree/
RUN find /app/tree -type f | wc -l > /app/count
RUN echo "$MODE" > /app/mode && cat /app/count
RUN mkdir -p /app/out && for i in 1 2 3 4 5; do echo $i > /app/out/$i; done
CMD ["cat", "/app/count"]
"""


def make_context(directory: Path) -> None:
    (directory / "tree").mkdir(parents=True)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    for i in range(200):
        sub = directory / "tree" / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n" * 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("docker"):
        print("run as root with the docker CLI installed", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dybuild-", dir="/tmp"))
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(base / "cfg")}
    dy = dockerd = None
    try:
        context = base / "ctx"
        make_context(context)
        dy, dockerd, engines = start_engines(base)
        build = ["build", "--network", "none", "-t", "bench:latest", str(context)]
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for name, cli in engines.items():
                samples.setdefault(("cold (--no-cache)", name), []).append(timed([*cli, *build, "--no-cache"], env))
                samples.setdefault(("cached", name), []).append(timed([*cli, *build], env))
        print(f"== docker build (classic builder), 8 steps, 200-file COPY, {args.runs} interleaved runs")
        print(table(comparison_rows(samples, "dockerd", "build")))
    finally:
        tear_down(dy, dockerd, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

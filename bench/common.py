"""What the benchmark scripts share: side-by-side tables and tearing down the daemons they started."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of a command (its output discarded); a failure stops the bench with its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: {proc.stderr.decode()[-400:]}")
    return elapsed


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def comparison_rows(samples: dict[tuple[str, str], list[float]], reference: str, what: str) -> list[list[str]]:
    """(operation, engine) -> seconds: median and min in ms, and the ratio to `reference`'s median."""
    rows = [[what, "engine", "median ms", "min ms", f"vs {reference}"]]
    for (op, name), values in samples.items():
        ref = statistics.median(samples[(op, reference)]) if (op, reference) in samples else None
        med = statistics.median(values)
        ratio = f"{med / ref:.2f}x" if ref else "-"
        rows.append([op, name, f"{med * 1000:.0f}", f"{min(values) * 1000:.0f}", ratio])
    return rows


def start_engines(base: Path) -> tuple[Any, Any, dict[str, list[str]]]:
    """A dockyard daemon and (when installed) a private dockerd under `base`, busybox:latest imported
    into both (CMD sh); returns them and the docker CLI command line for each. tear_down undoes it."""
    from tests.helpers.daemon import DaemonEnv
    from tests.helpers.dockerd import PrivateDockerd, dockerd_available
    from tests.helpers.rootfs import busybox_rootfs_tar

    dy = DaemonEnv(base / "dy", base / "dy" / "data", base / "dy" / "run", base / "dy" / "d.sock")
    dockerd = PrivateDockerd(base / "docker") if dockerd_available() else None
    (base / "dy").mkdir()
    tar = busybox_rootfs_tar(base / "busybox.tar", base / "build")
    dy.start()
    engines = {"dockyard": ["docker", "-H", dy.host]}
    if dockerd:
        dockerd.start()
        engines["dockerd"] = dockerd.cli
    for cli in engines.values():
        subprocess.run([*cli, "import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest"], check=True,
                       capture_output=True)  # fmt: skip
    return dy, dockerd, engines


def tear_down(dy: Any, dockerd: Any, base: Path) -> None:
    """Remove the containers left on the dockyard daemon, stop both daemons, clean the host."""
    from tests.helpers.daemon import host_cleanup

    if dy is None:
        shutil.rmtree(base, ignore_errors=True)
        return
    if dy.proc:
        ids = subprocess.run(["docker", "-H", dy.host, "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "-H", dy.host, "rm", "-f", *ids], capture_output=True)
    dy.stop()
    host_cleanup(dy)
    if dockerd:
        dockerd.stop()
    shutil.rmtree(base, ignore_errors=True)

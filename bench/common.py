"""What the benchmark scripts share: side-by-side tables and tearing down the daemons they started."""

from __future__ import annotations

import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any


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


def tear_down(dy: Any, dockerd: Any, base: Path) -> None:
    """Remove the containers left on the dockyard daemon, stop both daemons, clean the host."""
    from tests.helpers.daemon import host_cleanup

    if dy.proc:
        ids = subprocess.run(["docker", "-H", dy.host, "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "-H", dy.host, "rm", "-f", *ids], capture_output=True)
    dy.stop()
    host_cleanup(dy)
    if dockerd:
        dockerd.stop()
    shutil.rmtree(base, ignore_errors=True)

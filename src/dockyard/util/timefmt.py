"""Timestamps in the RFC 3339 nano format the Engine API uses."""

from __future__ import annotations

import re
import time

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339_nano(ts: float | None = None, ns: int | None = None) -> str:
    """Format a UNIX time (seconds or nanoseconds) like Go's time.RFC3339Nano in UTC."""
    if ns is None:
        ns = time.time_ns() if ts is None else int(ts * 1_000_000_000)
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))  # no datetime: monitors use this
    return f"{base}.{frac:09d}Z"


def parse_rfc3339(value: str) -> float:
    """Parse an RFC 3339 timestamp (nanosecond fraction allowed) to UNIX seconds."""
    if not value or value.startswith("0001-01-01"):
        return 0.0
    main, _, frac = value.rstrip("Z").partition(".")
    tz = 0
    for sign in "+-":
        if sign in frac:
            frac, _, off = frac.partition(sign)
            hh, _, mm = off.partition(":")
            tz = (int(hh) * 3600 + int(mm or 0) * 60) * (1 if sign == "+" else -1)
    if "+" in main[10:]:
        main, _, off = main.rpartition("+")
        hh, _, mm = off.partition(":")
        tz = int(hh) * 3600 + int(mm or 0) * 60
    from datetime import UTC, datetime

    dt = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + (float("0." + frac) if frac else 0.0) - tz


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(value: str) -> float | None:
    """time.ParseDuration ("1h30m", "10s", "-5m") in seconds, or None when it is not a duration."""
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * total if pos == len(text) and pos else None

"""docker's go-units: human sizes and durations, and size strings like "32m" to bytes."""

from __future__ import annotations

import re

from dockyard.util.humanize import human_duration, human_size

__all__ = ["human_duration", "human_size", "parse_go_duration", "ram_in_bytes"]

_BINARY_MULTIPLIERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def ram_in_bytes(value: str) -> int:
    """units.RAMInBytes: "32m" -> 33554432; binary multipliers, optional b/ib suffix."""
    match = _SIZE.match(value.strip())
    if not match:
        raise ValueError(f"invalid size: '{value}'")
    number, unit = match.groups()
    return int(float(number) * _BINARY_MULTIPLIERS[(unit or "").lower()])


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

"""docker's go-units: human sizes and durations, and size strings like "32m" to bytes."""

from __future__ import annotations

import re

DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_MULTIPLIERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def human_size(size: float, precision: int = 4) -> str:
    """units.HumanSizeWithPrecision: decimal SI units, `%.{precision}g` (4.26MB, 1.2kB, 512B)."""
    index = 0
    while size >= 1000.0 and index < len(DECIMAL_UNITS) - 1:
        size /= 1000.0
        index += 1
    return f"{size:.{precision}g}{DECIMAL_UNITS[index]}"


def human_duration(seconds: float) -> str:
    """units.HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


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

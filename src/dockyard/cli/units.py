"""docker's go-units: human sizes and durations, and size strings like "32m" to bytes."""

from __future__ import annotations

import re

from dockyard.util.humanize import human_duration, human_size

__all__ = ["human_duration", "human_size", "parse_go_duration", "ram_in_bytes"]

_BINARY_MULTIPLIERS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def parse_go_duration(value: str) -> float | None:
    """Go's time.ParseDuration (datetime, under it, is imported only by the verbs that need it)."""
    from dockyard.util.timefmt import parse_go_duration as parse

    return parse(value)


def ram_in_bytes(value: str) -> int:
    """units.RAMInBytes: "32m" -> 33554432; binary multipliers, optional b/ib suffix."""
    match = _SIZE.match(value.strip())
    if not match:
        raise ValueError(f"invalid size: '{value}'")
    number, unit = match.groups()
    return int(float(number) * _BINARY_MULTIPLIERS[(unit or "").lower()])

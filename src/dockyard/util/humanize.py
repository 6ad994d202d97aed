"""Human-readable durations and sizes exactly as docker prints them (go-units)."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "5 seconds", "About a minute", "3 hours"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
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


def parse_human_size(text: str) -> int:
    """go-units FromHumanSize: "10m", "1.5GB", "512k" in decimal units (k = 1000) to bytes."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    multiplier = 1
    if value and value[-1] in "kmgtp":
        multiplier = 1000 ** ("kmgtp".index(value[-1]) + 1)
        value = value[:-1]
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None
    if number < 0:
        raise ValueError(f"invalid size: '{text}'")
    return int(number * multiplier)


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal SI units and Go's `%.{precision}g` (4.26MB, 1.2kB)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    index = 0
    while size >= 1000.0 and index < len(units) - 1:
        size /= 1000.0
        index += 1
    return f"{size:.{precision}g}{units[index]}"

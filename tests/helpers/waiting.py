"""Polling for a condition that becomes true asynchronously (a container's state, a file, a log line)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """True as soon as `predicate()` holds; after `timeout` seconds, whatever it says last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

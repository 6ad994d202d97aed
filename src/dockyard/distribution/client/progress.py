"""docker's JSON progress messages (jsonmessage.JSONMessage) as pull and push emit them.

The daemon streams these to any Engine API client, so the real docker CLI renders dockyard's pulls;
`progress` carries docker's pre-rendered bar for clients that print it as is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dockyard.util.humanize import human_size

Emit = Callable[[dict[str, Any]], None]
_BAR_WIDTH = 50
_MIN_INTERVAL = 0.1  # seconds between two progress messages of one layer


def short(digest: str) -> str:
    """The 12-hex id docker shows per layer."""
    return digest.removeprefix("sha256:")[:12]


def progress_bar(current: int, total: int) -> str:
    """docker's JSONProgress.String(): `[=====>     ]  1.2MB/3.4MB` (no bar when total is unknown)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    percent = min(100, int(current * 100 / total))
    bars = percent * _BAR_WIDTH // 100
    return f"[{'=' * bars}>{' ' * (_BAR_WIDTH - bars)}] {human_size(current):>8}/{human_size(total)}"


def status(emit: Emit, text: str, layer: str = "") -> None:
    message: dict[str, Any] = {"status": text}
    if layer:
        message["id"] = layer
    emit(message)


class LayerProgress:
    """Counts one layer's bytes and emits throttled `Downloading`/`Pushing` messages."""

    def __init__(self, emit: Emit, action: str, layer: str, total: int, clock: Callable[[], float] = time.monotonic):
        self.emit = emit
        self.action = action
        self.layer = layer
        self.total = total
        self.current = 0
        self._clock = clock
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.current += n
            now = self._clock()
            if now - self._last < _MIN_INTERVAL and self.current < self.total:
                return
            self._last = now
            current = self.current
        self.emit(
            {
                "status": self.action,
                "progressDetail": {"current": current, "total": self.total},
                "progress": progress_bar(current, self.total),
                "id": self.layer,
            }
        )

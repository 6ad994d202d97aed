"""The daemon's event log: what `docker events` streams (create, start, die, destroy, tag...)."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any


class EventBus:
    """Keeps the recent events for `since` replays and fans new ones out to subscribers."""

    def __init__(self, keep: int = 1024) -> None:
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._subscribers: set[queue.Queue[dict[str, Any]]] = set()
        self._lock = threading.Lock()

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> None:
        now = time.time_ns()
        attrs = dict(attributes or {})
        event: dict[str, Any] = {
            "Type": type_,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": attrs},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if type_ in ("container", "image"):
            # The pre-1.22 fields docker still sends for these types.
            event = {
                "status": action,
                "id": actor_id,
                **({"from": attrs["image"]} if "image" in attrs else {}),
                **event,
            }
        with self._lock:
            self._recent.append(event)
            for q in self._subscribers:
                q.put(event)

    def stream(
        self, since: float | None = None, until: float | None = None, filters: dict[str, list[str]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Replay events after `since`, then follow live ones until `until` (or forever)."""
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            backlog = [e for e in self._recent if since is not None and e["timeNano"] >= since * 1e9]
            if until is None or until > time.time():
                self._subscribers.add(q)
        try:
            for event in backlog:
                if until is not None and event["timeNano"] > until * 1e9:
                    return
                if matches(event, filters):
                    yield event
            while until is None or time.time() < until:
                timeout = None if until is None else max(0.0, until - time.time())
                try:
                    event = q.get(timeout=timeout if timeout is not None else 1.0)
                except queue.Empty:
                    if until is None:
                        yield {}  # lets the caller notice a hung-up client
                    continue
                if matches(event, filters):
                    yield event
        finally:
            with self._lock:
                self._subscribers.discard(q)


def matches(event: dict[str, Any], filters: dict[str, list[str]] | None) -> bool:
    """Docker's event filters: type, event/action, container, image, label, ... (OR within a key)."""
    if not filters:
        return True
    attrs = event["Actor"]["Attributes"]
    checks = {
        "type": [event["Type"]],
        "event": [event["Action"], event["Action"].split(":")[0]],
        "container": [event["Actor"]["ID"], attrs.get("name", "")] if event["Type"] == "container" else [],
        "image": [event["Actor"]["ID"], attrs.get("image", ""), attrs.get("name", "")],
        "network": [event["Actor"]["ID"], attrs.get("name", "")] if event["Type"] == "network" else [],
        "volume": [event["Actor"]["ID"]] if event["Type"] == "volume" else [],
    }
    for key, wanted in filters.items():
        if key == "label":
            if not all(_label_match(attrs, w) for w in wanted):
                return False
            continue
        have = checks.get(key)
        if have is None:
            continue
        if not any(w in have or any(h.startswith(w) for h in have if key == "container") for w in wanted):
            return False
    return True


def _label_match(attrs: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in attrs and (not sep or attrs[key] == value)

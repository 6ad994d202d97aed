"""Container health checks (HEALTHCHECK / --health-*), as moby's daemon/health.go runs them.

A container whose config has a probe (`Test` of CMD or CMD-SHELL) gets `State.Health` when it starts:
status "starting", then one probe per interval, each an exec in the container (as its user, in its
working directory) with its output kept (4096 bytes at most, the last 5 results). A success makes it
"healthy"; `Retries` failures in a row make it "unhealthy", except that failures inside the start
period do not count while it is still "starting", and there probes run every start interval.
Each change of status is a `health_status: <status>` event. Probes stop while the container is
paused and end with it; the last state stays in the record, as docker keeps it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import parse_rfc3339, rfc3339_nano

log = logging.getLogger("dockyard.health")

SECOND = 1_000_000_000  # the API's durations are nanoseconds
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MINIMUM_DURATION = 1_000_000  # 1 ms: moby's containertypes.MinimumDuration
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
_DURATION_FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


# ------------------------------------------------------------------ configuration
def probe_command(config: dict[str, Any]) -> list[str] | None:
    """The command a probe runs, or None when the container has no (or a NONE) health check."""
    test = list((config.get("Healthcheck") or {}).get("Test") or [])
    if not test:
        return None
    kind, rest = test[0], test[1:]
    if kind == "CMD" and rest:
        return rest
    if kind == "CMD-SHELL" and rest:
        return [*(config.get("Shell") or ["/bin/sh", "-c"]), *rest]
    if kind not in ("NONE", "CMD", "CMD-SHELL"):
        log.warning("unknown healthcheck type %r (expected CMD)", kind)
    return None


def validate(healthcheck: dict[str, Any] | None) -> None:
    """moby's validateHealthCheck: durations are 0 (default) or at least 1ms, retries not negative."""
    if not healthcheck:
        return
    for name in _DURATION_FIELDS:
        value = int(healthcheck.get(name) or 0)
        if value != 0 and value < MINIMUM_DURATION:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
    if int(healthcheck.get("Retries") or 0) < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


def merge(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's health check: the user's settings, each unset one taken from the image's."""
    if not image:
        return user
    if not user:
        return dict(image)
    merged = dict(user)
    if not merged.get("Test"):
        merged["Test"] = image.get("Test")
    for name in (*_DURATION_FIELDS, "Retries"):
        if not merged.get(name) and image.get(name):
            merged[name] = image[name]
    return merged


def go_duration(ns: int) -> str:
    """Go's time.Duration.String for the durations a health check uses ("500ms", "30s", "1m30s")."""
    if ns < SECOND:
        return f"{ns / 1_000_000:g}ms" if ns >= 1_000_000 else f"{ns / 1000:g}µs" if ns >= 1000 else f"{ns}ns"
    seconds = ns / SECOND
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


# ------------------------------------------------------------------ the state machine
def record_result(health: dict[str, Any], result: dict[str, Any], started_at: float, hc: dict[str, Any]) -> str:
    """Fold one probe result into `health` (moby's handleProbeResult); returns the new status."""
    health["Log"] = [*(health.get("Log") or []), result][-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
        return HEALTHY
    start_period = int(hc.get("StartPeriod") or DEFAULT_START_PERIOD) / SECOND
    within_start = health.get("Status") == STARTING and parse_rfc3339(result["Start"]) - started_at < start_period
    if not within_start:
        health["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
        if health["FailingStreak"] >= (int(hc.get("Retries") or 0) or DEFAULT_RETRIES):
            health["Status"] = UNHEALTHY
    return health["Status"]


def next_interval(health: dict[str, Any], started_at: float, hc: dict[str, Any]) -> float:
    """Seconds until the next probe: the start interval while starting inside the start period."""
    interval = int(hc.get("Interval") or DEFAULT_INTERVAL) / SECOND
    start_period = int(hc.get("StartPeriod") or DEFAULT_START_PERIOD) / SECOND
    if time.time() - started_at < start_period and health.get("Status") == STARTING:
        return int(hc.get("StartInterval") or DEFAULT_START_INTERVAL) / SECOND
    return interval


# ------------------------------------------------------------------ the probe loop
class HealthMonitor:
    """One probing thread per running container that has a health check."""

    def __init__(self, containers: Any, execs: Any) -> None:
        self.containers = containers
        self.execs = execs
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, c: Any, reset: bool = True) -> None:
        """(Re)start probing a container that runs; `reset` (a fresh start) makes it "starting"."""
        if probe_command(c.config) is None:
            return
        with c.lock:
            health = c.state.get("Health")
            if reset or not health:
                c.state["Health"] = {"Status": STARTING, "FailingStreak": 0, "Log": (health or {}).get("Log") or []}
        self.stop(c)
        stop = threading.Event()
        with self._lock:
            self._stops[c.id] = stop
        threading.Thread(target=self._loop, args=(c, stop), name=f"health-{c.id[:12]}", daemon=True).start()

    def stop(self, c: Any) -> None:
        """Stop probing (exit, pause, removal); a probe in flight is abandoned."""
        with self._lock:
            stop = self._stops.pop(c.id, None)
        if stop is not None:
            stop.set()

    def _loop(self, c: Any, stop: threading.Event) -> None:
        hc = c.config.get("Healthcheck") or {}
        started_at = parse_rfc3339(c.state.get("StartedAt") or "")
        while not stop.wait(next_interval(c.state.get("Health") or {}, started_at, hc)):
            result = self._probe(c, hc)
            with c.lock:
                if stop.is_set() or not c.running:
                    return
                health = c.state.setdefault("Health", {"Status": STARTING, "FailingStreak": 0, "Log": []})
                before = health.get("Status")
                after = record_result(health, result, started_at, hc)
                c.save(durable=False)
            if after != before:
                self.containers._event(c, f"health_status: {after}")

    def _probe(self, c: Any, hc: dict[str, Any]) -> dict[str, Any]:
        command = probe_command(c.config) or []
        timeout_ns = int(hc.get("Timeout") or DEFAULT_TIMEOUT)
        start = rfc3339_nano()
        try:
            code, output = self.execs.run_probe(c, command, timeout_ns / SECOND, MAX_OUTPUT)
        except Exception as exc:  # the exec could not even be made: a failed probe, as moby counts it
            code, output = -1, str(exc)
        if code is None:
            code, output = -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
        return {"Start": start, "End": rfc3339_nano(), "ExitCode": code, "Output": output}

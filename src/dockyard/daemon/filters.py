"""Docker's list filters for containers (`docker ps --filter`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import parse_rfc3339

if TYPE_CHECKING:
    from dockyard.daemon.container import Container

CONTAINER_FILTERS = {
    "id",
    "name",
    "label",
    "status",
    "ancestor",
    "before",
    "since",
    "exited",
    "volume",
    "network",
    "health",
    "isolation",
    "is-task",
    "publish",
    "expose",
}
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
PRUNE_FILTERS = {"label", "label!", "until"}


def parse_timestamp(value: str, now: float | None = None) -> float:
    """docker's GetTimestamp for `until`/`since` filters: unix seconds, RFC 3339 (or a date), or a Go
    duration meaning that long ago ("24h")."""
    from dockyard.util.timefmt import parse_go_duration

    duration = parse_go_duration(value)
    if duration is not None:
        return (time.time() if now is None else now) - duration
    try:
        return float(value)
    except ValueError:
        pass
    text = value if "T" in value else value + "T00:00:00"
    if not any(ch in text[10:] for ch in "Z+-"):
        text += "Z"
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise InvalidParameter(f'failed to parse value as time or duration: "{value}"') from None


def check_keys(filters: dict[str, list[str]], allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")


def labels_match(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
    """`label=k[=v]` all must match; `label!=k[=v]` none may (docker's prune label rules)."""
    if not all(_label_ok(labels, v) for v in filters.get("label", [])):
        return False
    return not any(_label_ok(labels, v) for v in filters.get("label!", []))


def container_prune_matches(c: Container, filters: dict[str, list[str]], now: float | None = None) -> bool:
    """Whether `docker container prune --filter ...` may remove the (stopped) container."""
    check_keys(filters, PRUNE_FILTERS)
    until = filters.get("until")
    if until and parse_rfc3339(c.record["Created"]) >= parse_timestamp(until[-1], now):
        return False
    return labels_match(c.config.get("Labels") or {}, filters)


def container_matches(c: Container, filters: dict[str, list[str]], service: Any) -> bool:
    """True when `c` passes every filter key (values of one key are OR'ed, as in docker)."""
    for key, values in filters.items():
        if key not in CONTAINER_FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
        if not values:
            continue
        if not _match_key(c, key, values, service):
            return False
    return True


def _match_key(c: Container, key: str, values: list[str], service: Any) -> bool:
    if key == "id":
        return any(c.id.startswith(v) for v in values)
    if key == "name":
        import re

        return any(re.search(v, c.name) or re.search(v, c.name.lstrip("/")) for v in values)
    if key == "label":
        labels = c.config.get("Labels") or {}
        return all(_label_ok(labels, v) for v in values)
    if key == "status":
        for v in values:
            if v not in STATUSES:
                raise InvalidParameter(f"invalid filter 'status={v}'")
        return c.state["Status"] in values or (c.state.get("Paused") and "paused" in values)
    if key == "exited":
        return not c.running and c.state["FinishedAt"][:4] != "0001" and str(c.state["ExitCode"]) in values
    if key == "ancestor":
        return any(_ancestor_ok(c, v, service) for v in values)
    if key == "health":
        return (c.state.get("Health") or {}).get("Status", "none") in values
    if key == "is-task":
        return "false" in values  # no swarm: no container is a task
    if key in ("before", "since"):
        ref_created = parse_rfc3339(service.get(values[0]).record["Created"])
        mine = parse_rfc3339(c.record["Created"])
        return mine < ref_created if key == "before" else mine > ref_created
    return True


def _label_ok(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _ancestor_ok(c: Container, ref: str, service: Any) -> bool:
    if c.config.get("Image") == ref:
        return True
    try:
        image = service.images.resolve(ref)
    except Exception:
        return False
    return image.id == c.record["Image"]

"""Docker's `images --filter` (dangling, label, reference, before, since, until) and `image prune`'s."""

from __future__ import annotations

import fnmatch
from typing import Any

from dockyard.daemon.filters import check_keys, labels_match, parse_timestamp
from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import parse_rfc3339

IMAGE_FILTERS = {"dangling", "label", "reference", "before", "since", "until"}
IMAGE_PRUNE_FILTERS = {"dangling", "label", "label!", "until"}


def dangling_only(filters: dict[str, list[str]]) -> bool:
    """The `dangling` filter's value (docker accepts true/false/1/0 only); prune defaults to true."""
    values = filters.get("dangling") or ["true"]
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidParameter(f"Invalid filter 'dangling={values[-1]}'")
    return value in ("true", "1")


def image_prune_matches(image: Any, filters: dict[str, list[str]], now: float | None = None) -> bool:
    """`until` and `label`/`label!` of `docker image prune` (dangling is decided by the caller)."""
    check_keys(filters, IMAGE_PRUNE_FILTERS)
    until = filters.get("until")
    if until and parse_rfc3339(image.created) >= parse_timestamp(until[-1], now):
        return False
    return labels_match(_labels(image), filters)


def _labels(image: Any) -> dict[str, str]:
    return (image.config.get("config") or {}).get("Labels") or {}


def image_matches(image: Any, filters: dict[str, list[str]], store: Any) -> bool:
    for key, values in filters.items():
        if key not in IMAGE_FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
        if not values:
            continue
        if key == "dangling":
            if dangling_only(filters) != (not image.repo_tags):
                return False
        elif key == "label":
            if not labels_match(_labels(image), {"label": values}):
                return False
        elif key == "until":
            if parse_rfc3339(image.created) >= parse_timestamp(values[-1]):
                return False
        elif key == "reference":
            if not any(_reference_ok(image, v) for v in values):
                return False
        elif key in ("before", "since"):
            other = store.resolve(values[0])
            if key == "before" and not image.created < other.created:
                return False
            if key == "since" and not image.created > other.created:
                return False
    return True


def _reference_ok(image: Any, pattern: str) -> bool:
    """Match familiar names with shell patterns, with or without the tag (docker's rule)."""
    for ref in image.repo_tags:
        repo = ref.rsplit(":", 1)[0]
        if fnmatch.fnmatchcase(ref, pattern) or fnmatch.fnmatchcase(repo, pattern):
            return True
    return False

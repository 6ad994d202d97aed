"""Docker's `images --filter`: dangling, label, reference, before, since."""

from __future__ import annotations

import fnmatch
from typing import Any

from dockyard.errors import InvalidParameter

IMAGE_FILTERS = {"dangling", "label", "reference", "before", "since", "until"}


def image_matches(image: Any, filters: dict[str, list[str]], store: Any) -> bool:
    for key, values in filters.items():
        if key not in IMAGE_FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
        if not values:
            continue
        if key == "dangling":
            want = values[0].lower() in ("true", "1")
            if want != (not image.repo_tags):
                return False
        elif key == "label":
            labels = (image.config.get("config") or {}).get("Labels") or {}
            if not all(_label_ok(labels, v) for v in values):
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


def _label_ok(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _reference_ok(image: Any, pattern: str) -> bool:
    """Match familiar names with shell patterns, with or without the tag (docker's rule)."""
    for ref in image.repo_tags:
        repo = ref.rsplit(":", 1)[0]
        if fnmatch.fnmatchcase(ref, pattern) or fnmatch.fnmatchcase(repo, pattern):
            return True
    return False

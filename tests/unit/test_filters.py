"""Docker's filter rules: ps, prune (until/label/label!), images (dangling/until/label)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard.daemon.container import Container, new_record
from dockyard.daemon.filters import (
    container_matches,
    container_prune_matches,
    labels_match,
    parse_timestamp,
)
from dockyard.daemon.image_filters import dangling_only, image_matches, image_prune_matches
from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import rfc3339_nano


def _container(tmp_path: Path, labels: dict[str, str] | None = None, created: float | None = None) -> Container:
    config = {"Cmd": ["sh"], "Image": "busybox", "Labels": labels or {}}
    record = new_record("a" * 64, "/c1", config, {}, "sha256:" + "b" * 64, "overlay", tmp_path)
    if created is not None:
        record["Created"] = rfc3339_nano(created)
    return Container(record, tmp_path)


def _image(tags: list[str], labels: dict[str, str] | None = None, created: float | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        repo_tags=tags,
        config={"config": {"Labels": labels or {}}},
        created=rfc3339_nano(created if created is not None else time.time()),
    )


def test_parse_timestamp_forms() -> None:
    now = 1_700_000_000.0
    assert parse_timestamp("1h", now) == now - 3600
    assert parse_timestamp("90m", now) == now - 5400
    assert parse_timestamp("1699999999.5", now) == 1699999999.5
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_timestamp("2023-11-14") == parse_timestamp("2023-11-14T00:00:00Z")
    with pytest.raises(InvalidParameter):
        parse_timestamp("yesterday")


def test_labels_match_positive_and_negative() -> None:
    labels = {"env": "prod", "team": "a"}
    assert labels_match(labels, {"label": ["env"]})
    assert labels_match(labels, {"label": ["env=prod", "team"]})
    assert not labels_match(labels, {"label": ["env=dev"]})
    assert not labels_match(labels, {"label!": ["env"]})
    assert labels_match(labels, {"label!": ["env=dev"]})
    assert not labels_match(labels, {"label": ["team"], "label!": ["env=prod"]})


def test_container_prune_filters(tmp_path: Path) -> None:
    old = _container(tmp_path, {"keep": "yes"}, created=time.time() - 7200)
    assert container_prune_matches(old, {})
    assert container_prune_matches(old, {"until": ["1h"]})
    assert not container_prune_matches(old, {"until": ["3h"]})
    assert not container_prune_matches(old, {"label!": ["keep"]})
    assert container_prune_matches(old, {"label": ["keep=yes"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'status'"):
        container_prune_matches(old, {"status": ["exited"]})


def test_ps_status_paused_and_health(tmp_path: Path) -> None:
    c = _container(tmp_path)
    c.state.update(Status="paused", Running=True, Paused=True)
    assert container_matches(c, {"status": ["paused"]}, None)
    assert not container_matches(c, {"status": ["running"]}, None)
    assert container_matches(c, {"health": ["none"]}, None)
    assert not container_matches(c, {"health": ["healthy"]}, None)
    assert container_matches(c, {"is-task": ["false"]}, None)
    with pytest.raises(InvalidParameter):
        container_matches(c, {"status": ["sleeping"]}, None)


def test_dangling_values() -> None:
    assert dangling_only({})
    assert dangling_only({"dangling": ["true"]})
    assert not dangling_only({"dangling": ["false"]})
    with pytest.raises(InvalidParameter, match="Invalid filter 'dangling=maybe'"):
        dangling_only({"dangling": ["maybe"]})


def test_image_list_and_prune_filters() -> None:
    tagged = _image(["busybox:latest"], {"a": "1"}, created=time.time() - 7200)
    dangling = _image([], created=time.time())
    assert image_matches(dangling, {"dangling": ["true"]}, None)
    assert not image_matches(tagged, {"dangling": ["true"]}, None)
    assert image_matches(tagged, {"until": ["1h"]}, None)
    assert not image_matches(dangling, {"until": ["1h"]}, None)
    assert image_matches(tagged, {"label": ["a=1"]}, None)
    assert image_prune_matches(tagged, {"dangling": ["false"], "label!": ["b"]})
    assert not image_prune_matches(tagged, {"label!": ["a"]})
    with pytest.raises(InvalidParameter):
        image_prune_matches(tagged, {"reference": ["busybox"]})

"""Small daemon pieces: events, names, docker's human units, --change parsing, filters, signals."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from dockyard.build.changes import apply_changes
from dockyard.daemon.attach import parse_detach_keys
from dockyard.daemon.container import command_of, merge_image_config
from dockyard.daemon.containers import parse_signal
from dockyard.daemon.events import EventBus
from dockyard.daemon.names import random_name, validate_name
from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import parse_rfc3339, rfc3339_nano


def test_events_replay_filter_and_live():
    bus = EventBus()
    t0 = time.time()
    bus.publish("container", "create", "abc", {"image": "busybox", "name": "web"})
    bus.publish("image", "tag", "sha256:1", {"name": "busybox:latest"})
    replay = bus.stream(since=t0 - 1, until=time.time() + 0.2, filters={"type": ["container"]})
    events = [e for e in replay if e]
    assert [e["Action"] for e in events] == ["create"]
    assert events[0]["status"] == "create" and events[0]["from"] == "busybox"
    got: list[dict] = []
    live = bus.stream(until=time.time() + 1.0, filters={"event": ["die"]})

    def consume() -> None:
        got.extend(e for e in live if e)

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    bus.publish("container", "start", "abc", {})
    bus.publish("container", "die", "abc", {"exitCode": "0"})
    t.join()
    assert [e["Action"] for e in got] == ["die"]


def test_names():
    assert validate_name("web-1") == "/web-1"
    assert validate_name("/db") == "/db"
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        validate_name("bad name")
    assert "_" in random_name()


def test_rfc3339_round_trip():
    ts = rfc3339_nano(ns=1_700_000_000_123_456_789)
    assert ts == "2023-11-14T22:13:20.123456789Z"
    assert abs(parse_rfc3339(ts) - 1_700_000_000.123456789) < 1e-6
    assert parse_rfc3339("2023-11-14T23:13:20+01:00") == pytest.approx(1_700_000_000)


def test_apply_changes():
    cfg = apply_changes(
        {"Env": ["A=1"]},
        [
            'CMD ["sh", "-c", "echo hi"]',
            "ENV A=2 B=3",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
            "WORKDIR /srv",
            "ENTRYPOINT exec me",
            "USER app",
            "STOPSIGNAL SIGINT",
            'VOLUME ["/data"]',
        ],
    )
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "exec me"]
    assert cfg["Env"] == ["A=2", "B=3"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"k": "v"} and cfg["WorkingDir"] == "/srv" and cfg["User"] == "app"
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGINT"
    with pytest.raises(InvalidParameter):
        apply_changes({}, ["RUN rm -rf /"])


def test_merge_image_config():
    config = {"Env": ["B=own"], "Cmd": None, "Entrypoint": None, "Labels": {"x": "1"}}
    merge_image_config(
        config, {"Env": ["PATH=/bin", "B=img"], "Cmd": ["sh"], "WorkingDir": "/w", "Labels": {"x": "0", "y": "2"}}
    )
    assert config["Env"] == ["PATH=/bin", "B=own"]
    assert config["Cmd"] == ["sh"] and config["WorkingDir"] == "/w"
    assert config["Labels"] == {"x": "1", "y": "2"}
    # An explicit entrypoint drops the image's CMD, as docker does.
    config = {"Entrypoint": ["echo"], "Cmd": None}
    merge_image_config(config, {"Entrypoint": ["/init"], "Cmd": ["default"]})
    assert command_of(config) == ["echo"]
    with pytest.raises(InvalidParameter):
        command_of({"Entrypoint": None, "Cmd": None})


def test_signals_and_detach_keys():
    assert parse_signal("SIGTERM") == signal.SIGTERM
    assert parse_signal("kill") == signal.SIGKILL
    assert parse_signal("10") == 10
    with pytest.raises(InvalidParameter):
        parse_signal("SIGNOPE")
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(InvalidParameter):
        parse_detach_keys("ctrl-")

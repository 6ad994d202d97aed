"""`events` through our CLI, the real docker CLI and the docker SDK: since/until replay, filters, fields."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest


def _lifecycle(dy) -> tuple[str, float, float]:
    since = time.time()
    time.sleep(0.05)
    cid = dy.out("run", "-d", "--name", f"ev-{int(since * 1000) % 100000}", "busybox", "true").strip()
    dy.out("wait", cid)
    dy.out("rm", cid)
    time.sleep(0.05)
    return cid, since, time.time()


def test_events_replay_with_filters(dy):
    cid, since, until = _lifecycle(dy)
    lines = dy.out(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{until:.3f}",
        "--filter",
        f"container={cid}",
        "--format",
        "json",
    ).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["Action"] for e in events] == ["create", "start", "die", "destroy"]
    die = events[2]
    assert die["Type"] == "container" and die["Actor"]["ID"] == cid and die["id"] == cid
    assert die["Actor"]["Attributes"]["exitCode"] == "0" and die["from"] == "busybox"
    only_die = dy.out(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{until:.3f}",
        "--filter",
        f"container={cid}",
        "--filter",
        "event=die",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    )
    assert only_die.split() == ["die", cid]
    default = dy.out(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{until:.3f}",
        "--filter",
        f"container={cid}",
        "--filter",
        "event=create",
    ).strip()
    assert f" container create {cid} (" in default and "image=busybox" in default


def test_events_relative_since(dy):
    cid, _, until = _lifecycle(dy)
    out = dy.out(
        "events", "--since", "1m", "--until", f"{until:.3f}", "--filter", f"container={cid}", "--format", "{{.Action}}"
    )
    assert out.split() == ["create", "start", "die", "destroy"]


@pytest.mark.skipif(not shutil.which("docker"), reason="docker CLI not installed")
def test_docker_cli_and_sdk_events(dy):
    import docker

    cid, since, until = _lifecycle(dy)
    env = {"DOCKER_HOST": dy.host, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{until:.3f}",
            "--filter",
            f"container={cid}",
            "--format",
            "{{.Type}} {{.Action}}",
        ],
        capture_output=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout.decode()
    assert out.splitlines() == ["container create", "container start", "container die", "container destroy"]
    client = docker.DockerClient(base_url=dy.host, version="auto")
    try:
        seen = [e["Action"] for e in client.events(since=since, until=until, decode=True, filters={"container": cid})]
    finally:
        client.close()
    assert seen == ["create", "start", "die", "destroy"]

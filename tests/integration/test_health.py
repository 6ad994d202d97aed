"""Health checks end to end: --health-* flags and image HEALTHCHECKs, status in inspect/ps/events/filters,
timeouts, pause, restart, and the real docker CLI reading it."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable

import pytest

from tests.helpers.waiting import wait_until

DOCKER = "/usr/local/bin/docker"
FAST = ["--health-interval", "200ms", "--health-retries", "2"]


def _name() -> str:
    return "hc-" + uuid.uuid4().hex[:10]


def _health(dy, name: str) -> dict:
    return json.loads(dy.out("inspect", "-f", "{{json .State.Health}}", name))


def _status_is(dy, name: str, status: str) -> Callable[[], bool]:
    return lambda: (_health(dy, name) or {}).get("Status") == status


def test_starting_unhealthy_healthy_in_inspect_ps_events_and_filters(dy) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    since = str(int(time.time()) - 1)
    dy.out("run", "-d", "--name", name, "--health-cmd", "cat /tmp/ok", *FAST, "busybox", "sleep", "300")
    assert _health(dy, name)["Status"] == "starting"
    assert "(health: starting)" in dy.out("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert wait_until(_status_is(dy, name, "unhealthy"))
    state = _health(dy, name)
    assert state["FailingStreak"] >= 2
    failed = state["Log"][-1]
    assert failed["ExitCode"] == 1 and "No such file" in failed["Output"]
    assert set(failed) == {"Start", "End", "ExitCode", "Output"}
    assert dy.out("ps", "-q", "--filter", "health=unhealthy", "--filter", f"name={name}").strip()

    dy.out("exec", name, "sh", "-c", "echo fine > /tmp/ok")
    assert wait_until(_status_is(dy, name, "healthy"))
    state = _health(dy, name)
    assert state["FailingStreak"] == 0 and state["Log"][-1] == {**state["Log"][-1], "ExitCode": 0, "Output": "fine\n"}
    assert len(state["Log"]) <= 5
    assert dy.out("ps", "--filter", f"name={name}", "--format", "{{.Status}}").strip().endswith("(healthy)")
    assert dy.out("ps", "-q", "--filter", "health=healthy", "--filter", f"name={name}").strip()
    assert not dy.out("ps", "-q", "--filter", "health=unhealthy", "--filter", f"name={name}").strip()

    events = dy.out(
        "events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", f"container={name}",
        "--filter", "event=health_status", "--format", "{{.Action}}",
    ).split("\n")  # fmt: skip
    assert [e for e in events if e] == ["health_status: unhealthy", "health_status: healthy"]


def test_timeout_kills_the_probe_and_fails_it(dy) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    timeout = ["--health-cmd", "sleep 30", "--health-timeout", "100ms"]
    dy.out("run", "-d", "--name", name, *timeout, *FAST, "busybox", "sleep", "300")
    assert wait_until(_status_is(dy, name, "unhealthy"))
    entry = _health(dy, name)["Log"][-1]
    assert entry == {**entry, "ExitCode": -1, "Output": "Health check exceeded timeout (100ms)"}
    pid = int(dy.out("inspect", "-f", "{{.State.Pid}}", name))
    time.sleep(1.0)  # a few more probes: each timed-out one must have been killed, not left running
    assert len(_probes_in(pid, "sleep 30")) <= 1


def _probes_in(init_pid: int, cmdline: str) -> list[int]:
    """Processes running `cmdline` in the pid namespace of the container whose init is `init_pid`."""
    namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode().strip()
            if argv == cmdline and os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_image_healthcheck_no_healthcheck_pause_and_restart(dy) -> None:  # type: ignore[no-untyped-def]
    tag = f"hc-image-{uuid.uuid4().hex[:8]}:1"
    base = _name()
    dy.out("create", "--name", base, "busybox", "true")
    dy.out("commit", "--change", 'HEALTHCHECK --interval=200ms --retries=1 CMD ["sh", "-c", "exit 0"]', base, tag)
    image_check = json.loads(dy.out("image", "inspect", "-f", "{{json .Config.Healthcheck}}", tag))
    assert image_check["Test"] == ["CMD", "sh", "-c", "exit 0"] and image_check["Interval"] == 200_000_000
    try:
        from_image = _name()
        dy.out("run", "-d", "--name", from_image, tag, "sleep", "300")
        assert wait_until(_status_is(dy, from_image, "healthy"))

        disabled = _name()
        dy.out("run", "-d", "--name", disabled, "--no-healthcheck", tag, "sleep", "300")
        time.sleep(0.5)
        assert _health(dy, disabled) is None  # no Health at all, as docker
        assert "(" not in dy.out("ps", "--filter", f"name={disabled}", "--format", "{{.Status}}")

        dy.out("pause", from_image)
        probes = len(_health(dy, from_image)["Log"])
        time.sleep(0.6)
        assert len(_health(dy, from_image)["Log"]) == probes  # no probes into a frozen container
        dy.out("unpause", from_image)

        dy.out("stop", "-t", "0", from_image)
        assert _health(dy, from_image)["Status"] == "healthy"  # the last state stays, as docker keeps it
        dy.out("start", from_image)
        assert _health(dy, from_image)["Status"] == "starting"  # a fresh start probes from scratch
        assert wait_until(_status_is(dy, from_image, "healthy"))
    finally:
        for c in dy.out("ps", "-aq", "--filter", f"ancestor={tag}").split():
            dy.cli("rm", "-f", c)
        dy.cli("rm", "-f", base)
        dy.cli("rmi", tag)


def test_bad_health_settings_are_refused(dy) -> None:  # type: ignore[no-untyped-def]
    from dockyard.client.api import APIClient
    from dockyard.client.errors import APIError

    with pytest.raises(APIError, match="Interval in Healthcheck cannot be less than 1ms") as info:
        APIClient(dy.host).create_container(
            {"Image": "busybox", "Cmd": ["true"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}
        )
    assert info.value.status == 400
    out = dy.cli("run", "--health-retries", "-1", "busybox", "true")
    assert out.returncode == 125 and b"--health-retries cannot be negative" in out.stderr


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="the docker CLI is not installed")
def test_docker_cli_sees_health(dy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**dy.env(), "DOCKER_HOST": dy.host, "DOCKER_CONFIG": str(tmp_path)}
    name = _name()
    subprocess.run(
        [DOCKER, "run", "-d", "--name", name, "--health-cmd", "true", *FAST, "busybox", "sleep", "300"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip

    def docker_says_healthy() -> bool:
        out = subprocess.run(
            [DOCKER, "inspect", "-f", "{{.State.Health.Status}}", name], env=env, capture_output=True, text=True
        )
        return out.stdout.strip() == "healthy"

    assert wait_until(docker_says_healthy)
    ps = subprocess.run([DOCKER, "ps", "--filter", f"name={name}"], env=env, capture_output=True, text=True).stdout
    assert "(healthy)" in ps
    config = subprocess.run(
        [DOCKER, "inspect", "-f", "{{json .Config.Healthcheck}}", name], env=env, capture_output=True, text=True
    ).stdout
    assert json.loads(config)["Test"] == ["CMD-SHELL", "true"]


def test_probing_goes_on_after_a_daemon_restart(dy) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    dy.out("run", "-d", "--name", name, "--health-cmd", "true", *FAST, "busybox", "sleep", "300")
    assert wait_until(_status_is(dy, name, "healthy"))
    dy.kill()  # SIGKILL: the container and its monitor keep running
    dy.start()
    last = _health(dy, name)["Log"][-1]["End"]
    assert _health(dy, name)["Status"] == "healthy"  # not reset: the container did not restart
    assert wait_until(lambda: _health(dy, name)["Log"][-1]["End"] > last)


def test_probe_execs_do_not_pile_up(dy) -> None:  # type: ignore[no-untyped-def]
    from dockyard.client.api import APIClient
    from dockyard.client.errors import APIError

    name = _name()
    since = str(int(time.time()) - 1)
    dy.out("run", "-d", "--name", name, "--health-cmd", "true", *FAST, "busybox", "sleep", "300")
    assert wait_until(lambda: len(_health(dy, name)["Log"]) >= 3)
    window = ["--since", since, "--until", str(int(time.time()) + 1)]
    only = ["--filter", f"container={name}", "--filter", "event=exec_create"]
    events = dy.out("events", *window, *only, "--format", "{{.Actor.Attributes.execID}}")
    probe_ids = [e for e in events.split() if e]
    assert len(probe_ids) >= 3  # each probe is an exec, visible in events as in docker
    api = APIClient(dy.host)
    for exec_id in probe_ids[:-1]:  # finished probes are forgotten
        with pytest.raises(APIError):
            api.exec_inspect(exec_id)

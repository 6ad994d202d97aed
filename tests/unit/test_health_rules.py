"""Health checks: the probe command, validation, merging with the image, the status state machine
(moby's handleProbeResult), the probe schedule, HEALTHCHECK parsing and the --health-* flags."""

from __future__ import annotations

import pytest

from dockyard.build.changes import apply_changes, parse_healthcheck
from dockyard.cli.flags import StatusError
from dockyard.cli.run import build_create_body, run_flagset
from dockyard.daemon import health
from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import rfc3339_nano

S = health.SECOND


@pytest.mark.parametrize(
    ("config", "command"),
    [
        ({"Healthcheck": {"Test": ["CMD", "check", "-v"]}}, ["check", "-v"]),
        ({"Healthcheck": {"Test": ["CMD-SHELL", "curl x || exit 1"]}}, ["/bin/sh", "-c", "curl x || exit 1"]),
        ({"Healthcheck": {"Test": ["CMD-SHELL", "x"]}, "Shell": ["/bin/bash", "-ec"]}, ["/bin/bash", "-ec", "x"]),
        ({"Healthcheck": {"Test": ["NONE"]}}, None),
        ({"Healthcheck": {"Test": []}}, None),
        ({"Healthcheck": {"Test": ["BOGUS", "x"]}}, None),
        ({}, None),
    ],
)
def test_probe_command(config: dict, command: list[str] | None) -> None:
    assert health.probe_command(config) == command


def test_validate_uses_moby_wording() -> None:
    health.validate({"Test": ["CMD", "x"], "Interval": S, "Retries": 0})
    health.validate(None)
    with pytest.raises(InvalidParameter, match="Interval in Healthcheck cannot be less than 1ms"):
        health.validate({"Interval": 10})
    with pytest.raises(InvalidParameter, match="StartInterval in Healthcheck cannot be less than 1ms"):
        health.validate({"StartInterval": 999_999})
    with pytest.raises(InvalidParameter, match="Retries in Healthcheck cannot be negative"):
        health.validate({"Retries": -1})


def test_merge_takes_each_unset_field_from_the_image() -> None:
    image = {"Test": ["CMD", "img"], "Interval": 5 * S, "Timeout": 2 * S, "Retries": 4}
    assert health.merge(None, image) == image
    assert health.merge({"Test": ["CMD", "mine"]}, None) == {"Test": ["CMD", "mine"]}
    merged = health.merge({"Test": None, "Interval": S, "Retries": 0}, image)
    assert merged == {"Test": ["CMD", "img"], "Interval": S, "Timeout": 2 * S, "Retries": 4}
    assert health.merge({"Test": ["NONE"]}, image)["Test"] == ["NONE"]


def _result(exit_code: int, at: float) -> dict:
    return {"Start": rfc3339_nano(at), "End": rfc3339_nano(at), "ExitCode": exit_code, "Output": ""}


def test_failures_count_to_retries_and_a_success_resets() -> None:
    state = {"Status": health.STARTING, "FailingStreak": 0, "Log": []}
    hc = {"Retries": 2}
    assert health.record_result(state, _result(1, 100.0), 99.0, hc) == health.STARTING
    assert state["FailingStreak"] == 1
    assert health.record_result(state, _result(1, 101.0), 99.0, hc) == health.UNHEALTHY
    assert health.record_result(state, _result(0, 102.0), 99.0, hc) == health.HEALTHY
    assert state["FailingStreak"] == 0
    for i in range(10):
        health.record_result(state, _result(0, 103.0 + i), 99.0, hc)
    assert len(state["Log"]) == health.MAX_LOG_ENTRIES and state["Log"][-1]["Start"] == rfc3339_nano(112.0)


def test_start_period_forgives_failures_only_while_starting() -> None:
    hc = {"Retries": 1, "StartPeriod": 10 * S}
    starting = {"Status": health.STARTING, "FailingStreak": 0, "Log": []}
    assert health.record_result(starting, _result(1, 105.0), 100.0, hc) == health.STARTING
    assert starting["FailingStreak"] == 0
    assert health.record_result(starting, _result(1, 111.0), 100.0, hc) == health.UNHEALTHY
    healthy = {"Status": health.HEALTHY, "FailingStreak": 0, "Log": []}
    assert health.record_result(healthy, _result(1, 105.0), 100.0, hc) == health.UNHEALTHY


def test_probe_schedule() -> None:
    import time

    now = time.time()
    hc = {"Interval": 7 * S, "StartPeriod": 60 * S, "StartInterval": 2 * S}
    assert health.next_interval({"Status": health.STARTING}, now, hc) == 2
    assert health.next_interval({"Status": health.HEALTHY}, now, hc) == 7
    assert health.next_interval({"Status": health.STARTING}, now - 120, hc) == 7
    assert health.next_interval({"Status": health.STARTING}, now, {"StartPeriod": 60 * S}) == 5
    assert health.next_interval({}, now, {}) == 30


@pytest.mark.parametrize(
    ("ns", "text"),
    [(200_000_000, "200ms"), (30 * S, "30s"), (90 * S, "1m30s"), (1_500_000_000, "1.5s"), (3600 * S, "1h0m0s")],
)
def test_go_duration(ns: int, text: str) -> None:
    assert health.go_duration(ns) == text


def test_healthcheck_instruction() -> None:
    assert parse_healthcheck("CMD curl -f http://x/ || exit 1") == {
        "Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"]
    }
    assert parse_healthcheck('--interval=5m --timeout=3s --retries=2 CMD ["/bin/check", "-v"]') == {
        "Test": ["CMD", "/bin/check", "-v"],
        "Interval": 300 * S,
        "Timeout": 3 * S,
        "Retries": 2,
    }
    assert parse_healthcheck("NONE") == {"Test": ["NONE"]}
    assert apply_changes({}, ["HEALTHCHECK --start-period=1s CMD true"])["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "StartPeriod": S,
    }
    for bad, message in [
        ("FOO x", "Unknown type"),
        ("NONE x", "takes no arguments"),
        ("--interval=xx CMD true", "invalid duration"),
        ("--retries=-1 CMD true", "cannot be negative"),
        ("--interval=1ns CMD true", "cannot be less than 1ms"),
        ("--bogus=1 CMD true", "Unknown flag: bogus"),
    ]:
        with pytest.raises(InvalidParameter, match=message):
            parse_healthcheck(bad)


def test_health_flags_make_docker_s_config() -> None:
    opts, args = run_flagset().parse(
        ["--health-cmd", "pg_isready", "--health-interval", "2s", "--health-retries", "4", "busybox"]
    )
    config = build_create_body(opts, args[0], [])["Healthcheck"]
    assert config == {
        "Test": ["CMD-SHELL", "pg_isready"], "Interval": 2 * S, "Timeout": 0, "StartPeriod": 0,
        "StartInterval": 0, "Retries": 4,
    }  # fmt: skip
    opts, args = run_flagset().parse(["--health-timeout", "1m30s", "busybox"])
    assert build_create_body(opts, args[0], [])["Healthcheck"]["Test"] is None  # the image's command stays
    opts, args = run_flagset().parse(["--no-healthcheck", "busybox"])
    assert build_create_body(opts, args[0], [])["Healthcheck"] == {"Test": ["NONE"]}
    opts, args = run_flagset().parse(["busybox"])
    assert "Healthcheck" not in build_create_body(opts, args[0], [])
    opts, args = run_flagset().parse(["--no-healthcheck", "--health-cmd", "x", "busybox"])
    with pytest.raises(StatusError, match="--no-healthcheck conflicts with --health-\\* options"):
        build_create_body(opts, args[0], [])
    with pytest.raises(Exception, match='time: invalid duration "soon"'):
        run_flagset().parse(["--health-interval", "soon", "busybox"])

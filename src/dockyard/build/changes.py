"""Dockerfile-style `--change` instructions for import and commit (CMD, ENV, EXPOSE, ...)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from dockyard.errors import InvalidParameter

ALLOWED = {
    "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL",
}  # fmt: skip
_HEALTH_OPTIONS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod"}
_HEALTH_OPTIONS["start-interval"] = "StartInterval"


def _json_array(value: str) -> list[str] | None:
    """The exec form: a JSON array of strings, else None (the shell form)."""
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed) else None


def _json_or_shell(value: str) -> list[str]:
    """Exec form when the value is a JSON array, else shell form wrapped in /bin/sh -c."""
    exec_form = _json_array(value)
    return exec_form if exec_form is not None else ["/bin/sh", "-c", value.strip()]


def _pairs(value: str) -> list[tuple[str, str]]:
    """`K=V K2="v 2"` pairs, or the legacy single `K V` form."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        key, _, rest = value.strip().partition(" ")
        return [(key, rest.strip())]
    out = []
    for word in words:
        key, sep, val = word.partition("=")
        if not sep:
            raise InvalidParameter(f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value')
        out.append((key, val))
    return out


def parse_healthcheck(value: str) -> dict[str, Any]:
    """`HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D] [--retries=N]
    CMD command` (exec form as JSON, else shell form) or `HEALTHCHECK NONE`, as docker's builder reads it."""
    from dockyard.util.timefmt import parse_go_duration

    words = value.strip().split(None, 1)
    options: dict[str, Any] = {}
    while words and words[0].startswith("--"):
        name, _, arg = words[0][2:].partition("=")
        if name == "retries":
            if not arg.lstrip("-").isdigit():
                raise InvalidParameter(f'strconv.ParseInt: parsing "{arg}": invalid syntax')
            if int(arg) < 0:
                raise InvalidParameter(f"--retries cannot be negative ({arg})")
            options["Retries"] = int(arg)
        elif name in _HEALTH_OPTIONS:
            seconds = parse_go_duration(arg)
            if seconds is None:
                raise InvalidParameter(f'time: invalid duration "{arg}"')
            nanos = round(seconds * 1_000_000_000)
            if nanos != 0 and nanos < 1_000_000:
                raise InvalidParameter(f"{_HEALTH_OPTIONS[name]} cannot be less than 1ms")
            options[_HEALTH_OPTIONS[name]] = nanos
        else:
            raise InvalidParameter(f"Unknown flag: {name}")
        words = words[1].split(None, 1) if len(words) > 1 else []
    kind = words[0].upper() if words else ""
    rest = words[1] if len(words) > 1 else ""
    if kind == "NONE":
        if rest or options:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    exec_form = _json_array(rest)
    return {"Test": ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", rest.strip()], **options}


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of an image `config` section with the instructions applied."""
    config = json.loads(json.dumps(config or {}))
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instr, _, value = line.partition(" ")
        instr = instr.upper()
        if instr not in ALLOWED:
            raise InvalidParameter(f"{instr} is not a valid change command")
        if instr == "CMD":
            config["Cmd"] = _json_or_shell(value)
        elif instr == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(value)
        elif instr == "ENV":
            env = [e for e in (config.get("Env") or [])]
            for key, val in _pairs(value):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={val}"]
            config["Env"] = env
        elif instr == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(dict(_pairs(value)))
            config["Labels"] = labels
        elif instr == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for port in value.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            config["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = dict(config.get("Volumes") or {})
            text = value.strip()
            paths = json.loads(text) if text.startswith("[") else text.split()
            vols.update({p: {} for p in paths})
            config["Volumes"] = vols
        elif instr == "USER":
            config["User"] = value.strip()
        elif instr == "WORKDIR":
            config["WorkingDir"] = value.strip()
        elif instr == "HEALTHCHECK":
            config["Healthcheck"] = parse_healthcheck(value)
        elif instr == "STOPSIGNAL":
            config["StopSignal"] = value.strip()
        elif instr == "ONBUILD":
            config["OnBuild"] = [*(config.get("OnBuild") or []), value.strip()]
    return config

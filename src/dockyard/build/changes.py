"""Dockerfile-style `--change` instructions for import and commit (CMD, ENV, EXPOSE, ...)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from dockyard.errors import InvalidParameter

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL"}


def _json_or_shell(value: str) -> list[str]:
    """Exec form when the value is a JSON array, else shell form wrapped in /bin/sh -c."""
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
    return ["/bin/sh", "-c", text]


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
        elif instr == "STOPSIGNAL":
            config["StopSignal"] = value.strip()
        elif instr == "ONBUILD":
            config["OnBuild"] = [*(config.get("OnBuild") or []), value.strip()]
    return config

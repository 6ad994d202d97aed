"""`--log-driver` / `--log-opt`: the json-file driver's options as moby validates and applies them.

dockyard writes docker's json-file format (the `local` driver is served by the same writer, so
`docker logs` works with both); `none` keeps no log. max-size and max-file rotate the file.
"""

from __future__ import annotations

from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.util.humanize import parse_human_size

DRIVERS = ("json-file", "local", "none")
READABLE_DRIVERS = ("", None, "json-file", "local")
JSON_FILE_OPTIONS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}


def validate_log_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The container's LogConfig (the daemon's default driver when none is named); an unknown driver
    or option is refused at create, with moby's wording."""
    driver = (config or {}).get("Type") or "json-file"
    options = dict((config or {}).get("Config") or {})
    if driver not in DRIVERS:
        raise InvalidParameter(f'failed to create container: logger: no log driver named "{driver}" is registered')
    if driver == "none" and options:
        raise InvalidParameter(f"unknown log opt '{next(iter(options))}' for none log driver")
    for name in options:
        if driver != "none" and name not in JSON_FILE_OPTIONS:
            raise InvalidParameter(f"unknown log opt '{name}' for {driver} log driver")
    _limits(options)
    return {"Type": driver, "Config": {k: str(v) for k, v in options.items()}}


def log_options(config: dict[str, Any] | None, path: str) -> dict[str, Any]:
    """The monitor's log arguments for a container: none at all for the `none` driver."""
    if ((config or {}).get("Type") or "json-file") == "none":
        return {"log_path": None}
    max_size, max_files = _limits(dict((config or {}).get("Config") or {}))
    return {"log_path": path, "log_max_size": max_size, "log_max_files": max_files}


def _limits(options: dict[str, str]) -> tuple[int, int]:
    max_size = 0
    if options.get("max-size"):
        try:
            max_size = parse_human_size(options["max-size"])
        except ValueError as exc:
            raise InvalidParameter(str(exc)) from None
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_files = 1
    if options.get("max-file"):
        try:
            max_files = int(options["max-file"])
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{options["max-file"]}": invalid syntax') from None
        if max_files < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    return max_size, max_files

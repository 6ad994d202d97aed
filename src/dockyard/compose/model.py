"""Compose file loader: read, interpolate, merge, validate and normalise into plain dicts.

Pure (no daemon): the orchestrator in `compose/project.py` consumes what `load_project` returns, so every
short/long syntax the Compose Specification allows is reduced here to one shape. Behaviour and wording
follow docker compose v2 (compose-go) where it has them.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # typing stays out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Lookup = Callable[[str], "str | None"]

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)
INVALID = "invalid compose project"
UNSUPPORTED_SERVICE_KEYS = ("secrets", "configs", "extends", "volumes_from")
UNSUPPORTED_TOP_LEVEL_KEYS = ("include",)
#: Lists replaced (not concatenated) when a later file sets them: they are shell commands.
OVERRIDE_LISTS = frozenset({"command", "entrypoint", "test"})

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0", ""})


class ComposeError(ValueError):
    """An invalid or unsupported Compose file; the message is what `docker compose` would print."""


# --------------------------------------------------------------------------------------------------------------
# Scalars: durations, sizes, booleans, ints


def _duration_ns(text: str | int | float) -> int:
    """Go time.ParseDuration (bare numbers are seconds), as integer nanoseconds to avoid float drift."""
    from fractions import Fraction

    if isinstance(text, bool):
        raise ComposeError(f'time: invalid duration "{text}"')
    if isinstance(text, int | float):
        return int(Fraction(text) * 10**9)
    raw = str(text).strip()
    body = raw.lstrip("+-")
    sign = -1 if raw.startswith("-") else 1
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", body):
        return sign * int(Fraction(body) * 10**9)
    total, pos = Fraction(0), 0
    for match in _DURATION_PART_RE.finditer(body):
        if match.start() != pos:
            break
        total += Fraction(match.group(1)) * _DURATION_UNITS_NS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ComposeError(f'time: invalid duration "{raw}"')
    return sign * int(total)


def parse_duration(text: str | int | float) -> float:
    """Compose duration ("1m30s", "10s", "500ms"; bare numbers are seconds) in seconds."""
    return _duration_ns(text) / 1e9


def parse_size(text: str | int) -> int:
    """Docker's units.RAMInBytes: "64m", "1g", "512k", "100" -> bytes with binary multiples."""
    if isinstance(text, bool):
        raise ComposeError(f"invalid size: '{text}'")
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(str(text).strip())
    if not match:
        raise ComposeError(f"invalid size: '{text}'")
    try:
        number = float(match.group(1))
    except ValueError:
        raise ComposeError(f"invalid size: '{text}'") from None
    return int(number * _SIZE_UNITS[(match.group(2) or "").lower()])


def _to_bool(value: Any, where: str) -> bool:
    """YAML or interpolated string booleans ("true" from `${FLAG}`) as compose's schema casts them."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ComposeError(f"{where} must be a boolean")


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ComposeError(f"{where} must be an integer")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ComposeError(f"{where} must be an integer") from None


def _to_str(value: Any) -> str:
    """Scalars as compose prints them: booleans lowercase, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _str_list(value: Any, where: str) -> list[str]:
    """A string or a list of scalars as a list of strings (dns, tmpfs, cap_add, ...)."""
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [_to_str(value)]
    if isinstance(value, list):
        return [_to_str(v) for v in value]
    raise ComposeError(f"{where} must be a string or a list")


def _mapping(value: Any, where: str, bare: str | None = None) -> dict[str, str | None]:
    """List form ("K=V", "K") or mapping form as {K: V}; `bare` is the value of a key given without "="."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): None if v is None else _to_str(v) for k, v in value.items()}
    if isinstance(value, list):
        result: dict[str, str | None] = {}
        for item in value:
            key, sep, val = _to_str(item).partition("=")
            result[key] = val if sep else bare
        return result
    raise ComposeError(f"{where} must be a mapping or a list")


# --------------------------------------------------------------------------------------------------------------
# Interpolation


def _invalid_interpolation(where: str, text: str) -> ComposeError:
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ComposeError(
        f"invalid interpolation format for {where}: {quoted}; you may need to escape any $ with another $"
    )


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start` (nested `${...}` allowed), or -1."""
    depth, pos = 0, start
    while pos < len(text):
        if text.startswith("${", pos):
            depth += 1
            pos += 2
            continue
        if text[pos] == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    return -1


def interpolate(text: str, lookup: Lookup, where: str = "") -> str:
    """Substitute `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `${VAR:+x}`, `${VAR+x}`, `$$`."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:dollar])
        nxt = text[dollar + 1 : dollar + 2]
        if nxt == "$":
            out.append("$")
            pos = dollar + 2
        elif nxt == "{":
            end = _closing_brace(text, dollar + 2)
            if end < 0:
                raise _invalid_interpolation(where, text)
            out.append(_substitute(text[dollar + 2 : end], lookup, where, text))
            pos = end + 1
        else:
            match = _NAME_RE.match(text, dollar + 1)
            if not match:
                raise _invalid_interpolation(where, text)
            out.append(lookup(match.group()) or "")
            pos = match.end()
    return "".join(out)


def _substitute(body: str, lookup: Lookup, where: str, text: str) -> str:
    """Evaluate one braced expression; defaults and messages are interpolated only when used."""
    match = _NAME_RE.match(body)
    if not match:
        raise _invalid_interpolation(where, text)
    name, rest = match.group(), body[match.end() :]
    value = lookup(name)
    if not rest:
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise _invalid_interpolation(where, text)
    present = bool(value) if op.startswith(":") else value is not None
    kind = op[-1]
    if kind == "-":
        return value if present else interpolate(arg, lookup, where)  # type: ignore[return-value]
    if kind == "+":
        return interpolate(arg, lookup, where) if present else ""
    if not present:
        message = interpolate(arg, lookup, where)
        suffix = f": {message}" if message else ""
        raise ComposeError(f"required variable {name} is missing a value{suffix}")
    return value  # type: ignore[return-value]


def _interpolate_tree(node: Any, lookup: Lookup, where: str) -> Any:
    """Interpolate every string value (never keys) of a loaded YAML document."""
    if isinstance(node, str):
        return interpolate(node, lookup, where) if "$" in node else node
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, lookup, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, lookup, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


# --------------------------------------------------------------------------------------------------------------
# Files: YAML, dotenv


def _yaml_loader() -> type:
    """A SafeLoader with YAML 1.2 scalars, as compose-go sees them: `8080:80` is a string, `yes` is not a bool."""
    import yaml

    cached = getattr(_yaml_loader, "cached", None)
    if cached is not None:
        return cached
    retyped = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}

    class ComposeLoader(yaml.SafeLoader):
        pass

    ComposeLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in retyped]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    ComposeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    ComposeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
    )
    ComposeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        text = loader.construct_scalar(node)
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)

    ComposeLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
    _yaml_loader.cached = ComposeLoader  # type: ignore[attr-defined]
    return ComposeLoader


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_yaml_loader())
    except OSError as exc:
        raise ComposeError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"yaml: {path}: {exc}") from None
    if data is None:
        raise ComposeError(f"empty compose file: {path}")
    if not isinstance(data, dict):
        raise ComposeError(f"{path}: Top-level object must be a mapping")
    return data


def _unquote(value: str) -> str:
    """A dotenv value: quoted values keep their content (escapes in double quotes), bare ones lose `  # comment`."""
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        if end > 0:
            inner = value[1:end]
            if quote == '"':
                inner = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), inner)
            return inner
    comment = re.search(r"\s#", value)
    return (value[: comment.start()] if comment else value).strip()


def read_env_file(path: str) -> dict[str, str | None]:
    """KEY=VALUE lines (`export ` prefix, quotes, # comments); a bare KEY maps to None (taken from the env)."""
    result: dict[str, str | None] = {}
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export ") :].lstrip()
            key, sep, value = line.partition("=")
            key = key.strip()
            if key:
                result[key] = _unquote(value.strip()) if sep else None
    return result


def find_files(directory: str) -> list[str]:
    """The first default compose file in `directory`, plus the first override file next to it."""
    directory = os.path.abspath(directory)
    for name in DEFAULT_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            overrides = [os.path.join(directory, o) for o in OVERRIDE_FILES]
            return [path, *[o for o in overrides if os.path.isfile(o)][:1]]
    raise ComposeError("no configuration file provided: not found")


# --------------------------------------------------------------------------------------------------------------
# Per-field shapes: ports, volumes, networks, depends_on, ... (applied to each file before merging)


def _port_range(text: str, spec: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    try:
        low, high = int(start), int(end or start)
    except ValueError:
        raise ComposeError(f"invalid port format: {spec}") from None
    if not (0 <= low <= high <= 65535):
        raise ComposeError(f"invalid port range: {spec}")
    return low, high


def _port(target: int, published: str, protocol: str, host_ip: str) -> dict[str, Any]:
    return {"target": target, "published": published, "protocol": protocol, "host_ip": host_ip}


def _parse_port_short(spec: str) -> list[dict[str, Any]]:
    """`[ip:][published:]target[/proto]` with ranges; one entry per container port, as compose expands them."""
    body, _, protocol = spec.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise ComposeError(f"invalid proto: {protocol}")
    host_ip = ""
    if body.startswith("["):
        close = body.find("]")
        if close < 0 or body[close + 1 : close + 2] != ":":
            raise ComposeError(f"invalid port format: {spec}")
        host_ip, body = body[1:close], body[close + 2 :]
        if ":" not in body:
            body = ":" + body
    parts = body.split(":")
    if len(parts) == 3 and not host_ip:
        host_ip, parts = parts[0], parts[1:]
    if len(parts) == 1:
        parts = ["", parts[0]]
    if len(parts) != 2 or not parts[1]:
        raise ComposeError(f"invalid port format: {spec}")
    published, target = parts
    low, high = _port_range(target, spec)
    if low == 0:
        raise ComposeError(f"invalid port format: {spec}")
    if not published:
        return [_port(p, "", protocol, host_ip) for p in range(low, high + 1)]
    pub_low, pub_high = _port_range(published, spec)
    if high == low:
        return [_port(low, published, protocol, host_ip)]
    if pub_high - pub_low != high - low:
        raise ComposeError(f"invalid ranges specified for container and host Ports: {target} and {published}")
    return [_port(low + i, str(pub_low + i), protocol, host_ip) for i in range(high - low + 1)]


def _ports(value: Any, where: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for item in value or []:
        if isinstance(item, dict):
            if "target" not in item:
                raise ComposeError(f"{where}: port target is required")
            protocol = _to_str(item.get("protocol") or "tcp").lower()
            target = _to_int(item["target"], f"{where}.target")
            result.append(_port(target, _to_str(item.get("published")), protocol, _to_str(item.get("host_ip"))))
        elif isinstance(item, str | int) and not isinstance(item, bool):
            result.extend(_parse_port_short(str(item)))
        else:
            raise ComposeError(f"{where}: invalid port {item!r}")
    return result


def _is_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _host_path(source: str, project_dir: str) -> str:
    """A bind source made absolute against the project directory, `~` expanded."""
    path = os.path.expanduser(source)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(project_dir, path))


def _mount(kind: str, source: str, target: str, read_only: bool) -> dict[str, Any]:
    return {"type": kind, "source": source, "target": target, "read_only": read_only}


def _parse_volume_short(spec: str, project_dir: str) -> dict[str, Any]:
    """`target`, `source:target` or `source:target:mode`: a path source is a bind, a name a named volume."""
    parts = spec.split(":")
    if len(parts) == 1:
        return _mount("volume", "", spec, False)
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise ComposeError(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    read_only = "ro" in (parts[2].split(",") if len(parts) == 3 else [])
    if _is_path(source):
        return _mount("bind", _host_path(source, project_dir), target, read_only)
    return _mount("volume", source, target, read_only)


def _volumes(value: Any, where: str, project_dir: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for item in value or []:
        if isinstance(item, str):
            result.append(_parse_volume_short(item, project_dir))
            continue
        if not isinstance(item, dict):
            raise ComposeError(f"{where}: invalid volume {item!r}")
        kind = _to_str(item.get("type") or "volume")
        if kind not in ("bind", "volume", "tmpfs"):
            raise ComposeError(f"{where}: volume type {kind!r} is not supported")
        target = _to_str(item.get("target"))
        if not target:
            raise ComposeError(f'invalid mount config for type "{kind}": field Target must not be empty')
        source = _to_str(item.get("source"))
        if kind == "bind":
            if not source:
                raise ComposeError('invalid mount config for type "bind": field Source must not be empty')
            source = _host_path(source, project_dir)
        elif kind == "tmpfs":
            source = ""
        result.append(_mount(kind, source, target, _to_bool(item.get("read_only"), f"{where}.read_only")))
    return result


def _keyed_options(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """Service `networks`/`depends_on`: a list of names or a mapping of name -> options (None allowed)."""
    if value is None:
        return {}
    if isinstance(value, list):
        return {_to_str(name): {} for name in value}
    if isinstance(value, dict):
        result = {}
        for name, options in value.items():
            if options is not None and not isinstance(options, dict):
                raise ComposeError(f"{where}.{name} must be a mapping")
            result[str(name)] = dict(options or {})
        return result
    raise ComposeError(f"{where} must be a mapping or a list")


def _command(value: Any, where: str) -> list[str] | None:
    """A string is split like a shell (compose uses shellwords); a list is kept."""
    import shlex

    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(f"{where}: {exc}") from None
    if isinstance(value, list):
        return [_to_str(v) for v in value]
    raise ComposeError(f"{where} must be a string or a list")


def _extra_hosts(value: Any, where: str) -> list[str]:
    """ "host:ip" (or compose v2's "host=ip") entries; the mapping form host -> ip (or list of ips)."""
    if isinstance(value, dict):
        return [f"{host}:{ip}" for host, ips in value.items() for ip in (ips if isinstance(ips, list) else [ips])]
    result = []
    for entry in _str_list(value, where):
        host, sep, ip = entry.partition("=")
        result.append(f"{host}:{ip}" if sep else entry)
    return result


def _ulimits(value: Any, where: str) -> dict[str, dict[str, int]]:
    result = {}
    for name, limit in (value or {}).items():
        if isinstance(limit, dict):
            soft = _to_int(limit.get("soft"), f"{where}.{name}.soft")
            hard = _to_int(limit.get("hard"), f"{where}.{name}.hard")
        else:
            soft = hard = _to_int(limit, f"{where}.{name}")
        result[str(name)] = {"soft": soft, "hard": hard}
    return result


def _env_files(value: Any, where: str, project_dir: str) -> list[dict[str, Any]]:
    entries = value if isinstance(value, list) else [value] if value is not None else []
    result = []
    for entry in entries:
        if isinstance(entry, dict):
            path, required = _to_str(entry.get("path")), _to_bool(entry.get("required", True), f"{where}.required")
        else:
            path, required = _to_str(entry), True
        result.append({"path": _host_path(path, project_dir), "required": required})
    return result


def _build(value: Any, where: str) -> dict[str, Any]:
    """Short form `build: ./dir` or the mapping; args/labels to mappings. Defaults come after merging."""
    if isinstance(value, str):
        return {"context": value}
    if not isinstance(value, dict):
        raise ComposeError(f"{where} must be a string or a mapping")
    build = dict(value)
    for key in ("args", "labels"):
        if key in build:
            build[key] = _mapping(build[key], f"{where}.{key}", bare=None if key == "args" else "")
    return build


def _devices(value: Any, where: str) -> list[str]:
    result = []
    for item in value or []:
        if isinstance(item, dict):
            parts = [_to_str(item.get("source")), _to_str(item.get("target") or item.get("source"))]
            result.append(":".join([*parts, _to_str(item["permissions"])] if item.get("permissions") else parts))
        else:
            result.append(_to_str(item))
    return result


def _shape_field(key: str, value: Any, where: str, project_dir: str) -> Any:
    """Reduce one service field to a mergeable canonical shape (no defaults yet)."""
    if key in ("environment", "sysctls"):
        return _mapping(value, where)
    if key == "labels":
        return _mapping(value, where, bare="")
    if key in ("command", "entrypoint"):
        return _command(value, where)
    if key == "ports":
        return _ports(value, where)
    if key == "volumes":
        return _volumes(value, where, project_dir)
    if key in ("networks", "depends_on"):
        return _keyed_options(value, where)
    if key == "build":
        return _build(value, where)
    if key == "extra_hosts":
        return _extra_hosts(value, where)
    if key == "ulimits":
        return _ulimits(value, where)
    if key == "env_file":
        return _env_files(value, where, project_dir)
    if key == "devices":
        return _devices(value, where)
    if key in ("expose", "dns", "dns_search", "tmpfs", "cap_add", "cap_drop", "security_opt", "group_add", "profiles"):
        return _str_list(value, where)
    return value


# --------------------------------------------------------------------------------------------------------------
# Merging


def _dedup(items: list[Any]) -> list[Any]:
    result: list[Any] = []
    for item in items:
        if item not in result:
            result.append(item)
    return result


def _merge(base: Any, over: Any, key: str = "") -> Any:
    """Compose merge rules: mappings merge, shell commands override, lists concatenate without duplicates."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for k, v in over.items():
            merged[k] = _merge(merged[k], v, str(k)) if k in merged else v
        return merged
    if isinstance(base, list) and isinstance(over, list) and key not in OVERRIDE_LISTS:
        if key == "volumes":
            by_target = {m["target"]: m for m in base if isinstance(m, dict)}
            by_target.update({m["target"]: m for m in over if isinstance(m, dict)})
            return list(by_target.values())
        return _dedup(base + over)
    return over


# --------------------------------------------------------------------------------------------------------------
# Final normalisation of a merged service


def _healthcheck(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ComposeError(f"{where} must be a mapping")
    if _to_bool(value.get("disable"), f"{where}.disable"):
        return {"Test": ["NONE"]}
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    elif isinstance(test, list):
        test = [_to_str(t) for t in test]
    elif test is None:
        test = []
    else:
        raise ComposeError(f"{where}.test must be a string or a list")

    def duration(key: str) -> int:
        return _duration_ns(value[key]) if value.get(key) is not None else 0

    retries = value.get("retries")
    return {
        "Test": test,
        "Interval": duration("interval"),
        "Timeout": duration("timeout"),
        "StartPeriod": duration("start_period"),
        "StartInterval": duration("start_interval"),
        "Retries": _to_int(retries, f"{where}.retries") if retries is not None else 0,
    }


def _replicas(svc: dict[str, Any], where: str) -> int:
    scale = svc.get("scale")
    deployed = (svc.get("deploy") or {}).get("replicas")
    if scale is not None and deployed is not None and _to_int(scale, where) != _to_int(deployed, where):
        raise ComposeError(f"services.{where}: can't set distinct values on 'scale' and 'deploy.replicas'")
    chosen = scale if scale is not None else deployed
    return _to_int(chosen, f"services.{where}.scale") if chosen is not None else 1


def _resolve_env(mapping: dict[str, str | None], env: dict[str, str]) -> dict[str, str | None]:
    """Keys given without a value take the value of the (project) environment, as compose resolves them."""
    return {k: env.get(k) if v is None else v for k, v in mapping.items()}


def _service_environment(svc: dict[str, Any], env: dict[str, str]) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    for entry in svc.get("env_file") or []:
        if not os.path.isfile(entry["path"]):
            if entry["required"]:
                raise ComposeError(
                    f"env file {entry['path']} not found: stat {entry['path']}: no such file or directory"
                )
            continue
        merged.update(read_env_file(entry["path"]))
    merged.update(svc.get("environment") or {})
    return _resolve_env(merged, env)


def _final_build(value: dict[str, Any] | None, project_dir: str, env: dict[str, str]) -> dict[str, Any] | None:
    if value is None:
        return None
    context = _to_str(value.get("context") or ".")
    if "://" not in context and not context.startswith("git@"):
        context = _host_path(context, project_dir)
    return {
        "context": context,
        "dockerfile": _to_str(value.get("dockerfile") or "Dockerfile"),
        "args": _resolve_env(value.get("args") or {}, env),
        "target": _to_str(value.get("target")),
        "labels": value.get("labels") or {},
    }


def _final_networks(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    networks = svc.get("networks")
    if networks is None and not svc.get("network_mode"):
        networks = {"default": {}}
    return {
        net: {"aliases": _str_list(opts.get("aliases"), "aliases"), "ipv4_address": _to_str(opts.get("ipv4_address"))}
        for net, opts in (networks or {}).items()
    }


def _final_depends_on(svc: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    result = {}
    for dep, opts in (svc.get("depends_on") or {}).items():
        condition = _to_str(opts.get("condition") or "service_started")
        if condition not in ("service_started", "service_healthy", "service_completed_successfully"):
            raise ComposeError(f"{where}.depends_on.{dep}.condition: invalid condition {condition!r}")
        result[dep] = {
            "condition": condition,
            "restart": _to_bool(opts.get("restart", False), f"{where}.depends_on.{dep}.restart"),
            "required": _to_bool(opts.get("required", True), f"{where}.depends_on.{dep}.required"),
        }
    mode = _to_str(svc.get("network_mode"))
    if mode.startswith("service:") and mode[len("service:") :] not in result:
        result[mode[len("service:") :]] = {"condition": "service_started", "restart": False, "required": True}
    return result


def _limit(svc: dict[str, Any], key: str, deploy_key: str) -> Any:
    """A resource from the service key, else from deploy.resources.limits."""
    if svc.get(key) is not None:
        return svc[key]
    return (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get(deploy_key)


def _normalise_service(name: str, svc: dict[str, Any], project_dir: str, env: dict[str, str]) -> dict[str, Any]:
    where = f"services.{name}"

    def text(key: str) -> str:
        return _to_str(svc.get(key))

    def flag(key: str) -> bool:
        return _to_bool(svc.get(key), f"{where}.{key}")

    mem_limit, cpus, pids = (
        _limit(svc, "mem_limit", "memory"),
        _limit(svc, "cpus", "cpus"),
        _limit(svc, "pids_limit", "pids"),
    )
    grace = svc.get("stop_grace_period")
    logging = svc.get("logging") or {}
    image = svc.get("image")
    return {
        "image": _to_str(image) if image is not None else None,
        "build": _final_build(svc.get("build"), project_dir, env),
        "command": svc.get("command"),
        "entrypoint": svc.get("entrypoint"),
        "environment": _service_environment(svc, env),
        "ports": svc.get("ports") or [],
        "expose": svc.get("expose") or [],
        "volumes": svc.get("volumes") or [],
        "tmpfs": svc.get("tmpfs") or [],
        "networks": _final_networks(svc),
        "network_mode": text("network_mode"),
        "depends_on": _final_depends_on(svc, where),
        "healthcheck": _healthcheck(svc.get("healthcheck"), f"{where}.healthcheck"),
        "restart": text("restart"),
        "labels": svc.get("labels") or {},
        "working_dir": text("working_dir"),
        "user": text("user"),
        "hostname": text("hostname"),
        "domainname": text("domainname"),
        "extra_hosts": svc.get("extra_hosts") or [],
        "dns": svc.get("dns") or [],
        "dns_search": svc.get("dns_search") or [],
        "cap_add": svc.get("cap_add") or [],
        "cap_drop": svc.get("cap_drop") or [],
        "privileged": flag("privileged"),
        "init": flag("init"),
        "read_only": flag("read_only"),
        "tty": flag("tty"),
        "stdin_open": flag("stdin_open"),
        "stop_signal": text("stop_signal"),
        "stop_grace_period": parse_duration(grace) if grace is not None else None,
        "container_name": text("container_name"),
        "replicas": _replicas(svc, name),
        "pid": text("pid"),
        "ipc": text("ipc"),
        "shm_size": parse_size(svc["shm_size"]) if svc.get("shm_size") is not None else 0,
        "ulimits": svc.get("ulimits") or {},
        "sysctls": svc.get("sysctls") or {},
        "devices": svc.get("devices") or [],
        "group_add": svc.get("group_add") or [],
        "security_opt": svc.get("security_opt") or [],
        "mem_limit": parse_size(mem_limit) if mem_limit is not None else 0,
        "cpus": float(cpus) if cpus is not None else 0.0,
        "pids_limit": _to_int(pids, f"{where}.pids_limit") if pids is not None else 0,
        "logging": {"driver": _to_str(logging.get("driver")), "options": _mapping(logging.get("options"), where)},
        "platform": text("platform"),
        "pull_policy": text("pull_policy"),
        "profiles": svc.get("profiles") or [],
    }


def _resource_name(project: str, key: str, spec: dict[str, Any]) -> tuple[str, bool]:
    """Real name of a top-level network/volume: `name:` as given, external keeps its key, else project-prefixed."""
    external = spec.get("external")
    if isinstance(external, dict):  # legacy `external: {name: x}`
        return _to_str(external.get("name") or spec.get("name") or key), True
    is_external = _to_bool(external, f"{key}.external")
    if spec.get("name"):
        return _to_str(spec["name"]), is_external
    return (key if is_external else f"{project}_{key}"), is_external


def _normalise_network(project: str, key: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    spec = spec or {}
    name, external = _resource_name(project, key, spec)
    ipam = spec.get("ipam") or {}
    return {
        "name": name,
        "driver": _to_str(spec.get("driver") or "bridge"),
        "external": external,
        "internal": _to_bool(spec.get("internal"), f"networks.{key}.internal"),
        "labels": _mapping(spec.get("labels"), f"networks.{key}.labels", bare=""),
        "ipam": {"config": [{k: _to_str(v) for k, v in (c or {}).items()} for c in ipam.get("config") or []]},
    }


def _normalise_volume(project: str, key: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    spec = spec or {}
    name, external = _resource_name(project, key, spec)
    return {
        "name": name,
        "driver": _to_str(spec.get("driver") or "local"),
        "external": external,
        "labels": _mapping(spec.get("labels"), f"volumes.{key}.labels", bare=""),
        "driver_opts": {str(k): _to_str(v) for k, v in (spec.get("driver_opts") or {}).items()},
    }


# --------------------------------------------------------------------------------------------------------------
# Project


def _project_name(explicit: str | None, from_file: Any, env: dict[str, str], project_dir: str) -> str:
    """-p is taken as given (must already be valid); others are normalised like compose-go."""

    def invalid(name: str) -> ComposeError:
        return ComposeError(
            f'"{name}" is not a valid project name: it must contain only characters from [a-z0-9_-] '
            "and start with [a-z0-9]"
        )

    if explicit:
        if not _PROJECT_NAME_RE.match(explicit):
            raise invalid(explicit)
        return explicit
    candidate = _to_str(from_file) or env.get("COMPOSE_PROJECT_NAME") or os.path.basename(project_dir)
    name = re.sub(r"[^a-z0-9_-]", "", candidate.lower())
    if not _PROJECT_NAME_RE.match(name):
        raise invalid(name or candidate)
    return name


def _shape_file(data: dict[str, Any], project_dir: str) -> dict[str, Any]:
    """Check one interpolated file's structure and bring its services to the canonical (mergeable) shapes."""
    for key in UNSUPPORTED_TOP_LEVEL_KEYS:
        if key in data:
            raise ComposeError(f"{key} is not supported")
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise ComposeError("services must be a mapping")
    shaped: dict[str, Any] = {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            raise ComposeError(f"services.{name} must be a mapping")
        for key in UNSUPPORTED_SERVICE_KEYS:
            if key in svc:
                raise ComposeError(f'service "{name}": {key} is not supported')
        shaped[str(name)] = {
            k: _shape_field(k, v, f"services.{name}.{k}", project_dir) for k, v in svc.items() if not k.startswith("x-")
        }
    result = {"services": shaped}
    for section in ("networks", "volumes"):
        value = data.get(section) or {}
        if not isinstance(value, dict):
            raise ComposeError(f"{section} must be a mapping")
        result[section] = {str(k): v or {} for k, v in value.items()}
    if "name" in data:
        result["name"] = data["name"]
    return result


def _validate(project: dict[str, Any]) -> None:
    services = project["services"]
    for name, svc in services.items():
        if svc["image"] is None and svc["build"] is None:
            raise ComposeError(f'service "{name}" has neither an image nor a build context specified: {INVALID}')
        if svc["network_mode"] and svc["networks"]:
            raise ComposeError(f"service {name} declares mutually exclusive `network_mode` and `networks`: {INVALID}")
        for dep in svc["depends_on"]:
            if dep not in services:
                raise ComposeError(f'service "{name}" depends on undefined service "{dep}": {INVALID}')
        for mount in svc["volumes"]:
            if mount["type"] == "volume" and mount["source"] and mount["source"] not in project["volumes"]:
                raise ComposeError(f'service "{name}" refers to undefined volume {mount["source"]}: {INVALID}')
        for net in svc["networks"]:
            if net not in project["networks"]:
                raise ComposeError(f'service "{name}" refers to undefined network {net}: {INVALID}')
    service_order(project)


def load_project(files: list[str], project_name: str | None = None, environ: dict[str, str] | None = None) -> dict:
    """Load, interpolate, merge (later files over earlier), normalise and validate a compose project."""
    if not files:
        raise ComposeError("no configuration file provided: not found")
    paths = [os.path.abspath(f) for f in files]
    project_dir = os.path.dirname(paths[0])
    env: dict[str, str] = {}
    dotenv = os.path.join(project_dir, ".env")
    if os.path.isfile(dotenv):
        env.update({k: v for k, v in read_env_file(dotenv).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    merged: dict[str, Any] = {"services": {}, "networks": {}, "volumes": {}}
    for path in paths:
        data = _interpolate_tree(_read_yaml(path), env.get, "")
        merged = _merge(merged, _shape_file(data, project_dir))

    name = _project_name(project_name, merged.get("name"), env, project_dir)
    services = {
        svc: _normalise_service(svc, spec, project_dir, env) for svc, spec in sorted(merged["services"].items())
    }
    # Drop optional dependencies on services that do not exist, as compose does.
    for svc in services.values():
        svc["depends_on"] = {d: o for d, o in svc["depends_on"].items() if d in services or o["required"]}
    networks = dict(merged["networks"])
    if "default" not in networks and any(not s["network_mode"] for s in services.values()):
        networks["default"] = {}
    project = {
        "name": name,
        "working_dir": project_dir,
        "services": services,
        "networks": {k: _normalise_network(name, k, v) for k, v in networks.items()},
        "volumes": {k: _normalise_volume(name, k, v) for k, v in merged["volumes"].items()},
    }
    _validate(project)
    return project


def _find_cycle(graph: dict[str, list[str]], nodes: set[str]) -> list[str]:
    """A dependency path that loops, for the error message (nodes are those left after topological sort)."""
    start = min(nodes)
    path, seen = [start], {start}
    while True:
        nxt = min(d for d in graph[path[-1]] if d in nodes)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def service_order(project: dict) -> list[str]:
    """Services so each comes after what it depends on (by name otherwise); ComposeError on a cycle."""
    import heapq

    services = project["services"]
    graph = {name: sorted(d for d in (svc.get("depends_on") or {}) if d in services) for name, svc in services.items()}
    waiting = {name: len(deps) for name, deps in graph.items()}
    dependants: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            dependants[dep].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for user in dependants[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(graph):
        cycle = _find_cycle(graph, set(graph) - set(order))
        raise ComposeError(f"dependency cycle detected: {' -> '.join(cycle)}")
    return order


def dump(project: dict) -> str:
    """YAML of the normalised project, for `compose config`."""
    import yaml

    return yaml.safe_dump(project, sort_keys=False, default_flow_style=False, allow_unicode=True)

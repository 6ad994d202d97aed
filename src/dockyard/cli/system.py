"""version, info and inspect."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, StatusError

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def cmd_version(cli: Cli, argv: list[str], name: str = "version") -> int:
    from dockyard import __version__
    from dockyard.client.transport import API_VERSION

    fs = FlagSet(name, "[OPTIONS]", "Show the dockyard version information", max_args=0).add(
        "-f, --format", "str", help="Format output using a custom template"
    )
    opts, _ = fs.parse(argv)
    client_info = {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GoVersion": "python" + sys.version.split()[0],
        "Os": sys.platform,
        "Arch": _GO_ARCH.get(os.uname().machine, os.uname().machine),
        "Context": "default",
    }
    if opts.format:
        from dockyard.cli.formatting import render

        server = None
        try:
            server = cli.client.version()
        finally:
            cli.out.write(render(opts.format, [{"Client": client_info, "Server": server}]))
        return 0
    cli.print("Client:")
    for label, key in (
        ("Version", "Version"),
        ("API version", "ApiVersion"),
        ("Python version", "GoVersion"),
        ("OS/Arch", None),
        ("Context", "Context"),
    ):
        value = f"{client_info['Os']}/{client_info['Arch']}" if key is None else client_info[key]
        cli.print(f" {label + ':':<19}{value}")
    cli.out.flush()
    server = cli.client.version()
    cli.print("")
    cli.print(f"Server: {(server.get('Platform') or {}).get('Name') or 'dockyard'}")
    cli.print(" Engine:")
    api = server.get("ApiVersion", "")
    minimum = server.get("MinAPIVersion")
    rows = [
        ("Version", server.get("Version", "")),
        ("API version", f"{api} (minimum version {minimum})" if minimum else api),
        ("Go version", server.get("GoVersion", "")),
        ("Git commit", server.get("GitCommit", "")),
        ("Built", server.get("BuildTime", "")),
        ("OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}"),
        ("Experimental", str(server.get("Experimental", False)).lower()),
    ]
    for label, value in rows:
        cli.print(f"  {label + ':':<18}{value}")
    return 0


def cmd_info(cli: Cli, argv: list[str], name: str = "info") -> int:
    from dockyard import __version__

    fs = FlagSet(name, "[OPTIONS]", "Display system-wide information", max_args=0).add(
        "-f, --format", "str", help="Format output using a custom template"
    )
    opts, _ = fs.parse(argv)
    info = cli.client.info()
    if opts.format:
        from dockyard.cli.formatting import render

        cli.out.write(render(opts.format, [info]))
        return 0
    lines = [
        "Client:",
        f" Version:    {__version__}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
    ]
    for key, label in (
        ("CgroupDriver", "Cgroup Driver"),
        ("CgroupVersion", "Cgroup Version"),
        ("DefaultRuntime", "Default Runtime"),
        ("KernelVersion", "Kernel Version"),
        ("OperatingSystem", "Operating System"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("NCPU", "CPUs"),
        ("Name", "Name"),
        ("ID", "ID"),
        ("DockerRootDir", "Docker Root Dir"),
    ):
        if key in info:
            lines.append(f" {label}: {info[key]}")
    if "MemTotal" in info:
        from dockyard.cli.units import human_size

        lines.append(f" Total Memory: {_binary_size(info['MemTotal']) if info['MemTotal'] else human_size(0)}")
    if info.get("Runtimes"):
        lines.append(f" Runtimes: {' '.join(sorted(info['Runtimes']))}")
    cli.out.write("\n".join(lines) + "\n")
    return 0


def _binary_size(size: float) -> str:
    """units.BytesSize: binary units with two decimals (7.66GiB)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.4g}{units[index]}"


def _inspectors(cli: Cli, kind: str | None) -> list[tuple[str, Callable[[str], Any]]]:
    # docker inspect's order when no --type is given: containers, images, then the other objects.
    table = {
        "container": cli.client.inspect_container,
        "image": cli.client.inspect_image,
        "network": cli.client.inspect_network,
        "volume": cli.client.inspect_volume,
    }
    if kind:
        if kind not in table:
            raise StatusError(1, f'"{kind}" is not a valid value for --type')
        return [(kind, table[kind])]
    return list(table.items())


def inspect_objects(cli: Cli, names: list[str], kind: str | None, fmt: str, size: bool = False) -> int:
    """docker inspect: a JSON array (4-space indent), or a template per object; errors at the end."""
    from dockyard.client.errors import APIError

    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        for obj_kind, inspect in _inspectors(cli, kind):
            try:
                found.append(inspect(name, size=True) if size and obj_kind == "container" else inspect(name))
                break
            except APIError as exc:
                if not exc.is_not_found:
                    errors.append(str(exc))
                    break
        else:
            errors.append(f"Error: No such {kind or 'object'}: {name}")
    if fmt:
        from dockyard.cli.formatting import render

        try:
            cli.out.write(render(fmt, found))
        except Exception as exc:
            from dockyard.cli.template import TemplateError

            if isinstance(exc, TemplateError) and "parsing error" in str(exc):
                raise StatusError(64, str(exc)) from exc
            raise
    else:
        cli.out.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def _inspect_flags(name: str, with_type: bool) -> FlagSet:
    fs = (
        FlagSet(name, "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on objects", min_args=1)
        .add("-f, --format", "str", help="Format output using a custom template")
        .add("-s, --size", help="Display total file sizes if the type is container")
    )
    return fs.add("--type", "str", help="Only inspect objects of the given type") if with_type else fs


def cmd_inspect(cli: Cli, argv: list[str], name: str = "inspect") -> int:
    opts, args = _inspect_flags(name, True).parse(argv)
    return inspect_objects(cli, args, opts.type or None, opts.format, opts.size)


def cmd_container_inspect(cli: Cli, argv: list[str], name: str = "container inspect") -> int:
    opts, args = _inspect_flags(name, False).parse(argv)
    return inspect_objects(cli, args, "container", opts.format, opts.size)


def cmd_image_inspect(cli: Cli, argv: list[str], name: str = "image inspect") -> int:
    opts, args = _inspect_flags(name, False).parse(argv)
    return inspect_objects(cli, args, "image", opts.format)


def _event_time(value: str) -> str:
    """docker's GetTimestamp: a Go duration ("10m") means that long ago; anything else goes as is."""
    import time

    from dockyard.util.timefmt import parse_go_duration

    duration = parse_go_duration(value)
    return f"{time.time() - duration:.9f}" if duration is not None else value


def cmd_events(cli: Cli, argv: list[str], name: str = "events") -> int:
    """docker events: stream the daemon's events (default line format or --format)."""
    from dockyard.cli.containers import parse_filters
    from dockyard.util.timefmt import rfc3339_nano

    fs = (
        FlagSet(name, "[OPTIONS]", "Get real time events from the server", max_args=0)
        .add("--since", "str", help="Show all events created since timestamp")
        .add("--until", "str", help="Stream events until this timestamp")
        .add("-f, --filter", "list", help="Filter output based on conditions provided")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, _ = fs.parse(argv)
    response = cli.client.events(
        since=_event_time(opts.since) if opts.since else None,
        until=_event_time(opts.until) if opts.until else None,
        filters=parse_filters(opts.filter) or None,
    )
    template = None
    if opts.format and opts.format != "json":
        from dockyard.cli import template as go_template

        template = go_template.parse(opts.format)
    try:
        for event in response.iter_json():
            if not event:
                continue
            if opts.format == "json":
                line = json.dumps(event)
            elif template is not None:
                line = template.execute(event)
            else:
                attrs = event.get("Actor", {}).get("Attributes") or {}
                shown = ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs))
                line = (
                    f"{rfc3339_nano(ns=event['timeNano'])} {event['Type']} {event['Action']} "
                    f"{event['Actor']['ID']}" + (f" ({shown})" if shown else "")
                )
            cli.print(line)
            cli.out.flush()
    except KeyboardInterrupt:
        return 0
    return 0

"""Container verbs: ps, start, stop, kill, restart, rm, logs, wait, rename, export, pause, unpause."""

from __future__ import annotations

import time

from dockyard.cli.common import Cli, each, write_stream
from dockyard.cli.flags import FlagSet, StatusError


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """`--filter key=value` (repeatable) -> {"key": ["value", ...]}."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise StatusError(1, "bad format of filter (expected name=value)")
        filters.setdefault(key.strip().lower(), []).append(value)
    return filters


def cmd_ps(cli: Cli, argv: list[str], name: str = "ps") -> int:
    from dockyard.cli.formatting import PS_TABLE, ContainerRow, render

    fs = (
        FlagSet(name, "[OPTIONS]", "List containers", max_args=0)
        .add("-a, --all", help="Show all containers (default shows just running)")
        .add("-q, --quiet", help="Only display container IDs")
        .add("-n, --last", "int", default=-1, help="Show n last created containers (includes all states)")
        .add("-l, --latest", help="Show the latest created container (includes all states)")
        .add("-s, --size", help="Display total file sizes")
        .add("--no-trunc", help="Don't truncate output")
        .add("-f, --filter", "list", help="Filter output based on conditions provided")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, _ = fs.parse(argv)
    limit = 1 if opts.latest else opts.last
    fmt = opts.format or "table"
    if opts.quiet and fmt == "table":
        fmt = "{{.ID}}"
    size = opts.size or ("{{.Size}}" in fmt.replace(" ", ""))
    containers = cli.client.containers(
        all=opts.all or limit > 0, limit=limit, size=size, filters=parse_filters(opts.filter)
    )
    default = PS_TABLE + ("\t{{.Size}}" if opts.size else "")
    now = time.time()
    rows = [ContainerRow(c, trunc=not opts.no_trunc, now=now) for c in containers]
    cli.out.write(render(fmt, rows, ContainerRow.headers, default))
    return 0


def cmd_start(cli: Cli, argv: list[str], name: str = "start") -> int:
    fs = (
        FlagSet(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", min_args=1)
        .add("-a, --attach", help="Attach STDOUT/STDERR and forward signals")
        .add("-i, --interactive", help="Attach container's STDIN")
        .add("--detach-keys", "str", help="Override the key sequence for detaching a container")
    )
    opts, args = fs.parse(argv)
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise StatusError(1, "you cannot start and attach multiple containers at once")
        return _start_attached(cli, args[0], opts.interactive, opts.detach_keys or None)
    failed = []
    for container in args:
        try:
            cli.client.start_container(container)
            cli.print(container)
        except Exception as exc:
            from dockyard.client.errors import APIError

            if not isinstance(exc, APIError):
                raise
            cli.error(str(exc))
            failed.append(container)
    if failed:
        raise StatusError(1, f"Error: failed to start containers: {', '.join(failed)}")
    return 0


def _start_attached(cli: Cli, container: str, interactive: bool, detach_keys: str | None) -> int:
    from dockyard.cli.run import attach_start_wait

    info = cli.client.inspect_container(container)
    config = dict(info.get("Config") or {})
    config["AttachStdin"] = interactive and config.get("OpenStdin", False)
    config["AttachStdout"] = config["AttachStderr"] = True
    auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
    return attach_start_wait(cli, info["Id"], config, auto_remove, detach_keys=detach_keys)


def _stop_like(cli: Cli, argv: list[str], name: str, verb: str, restart: bool) -> int:
    fs = (
        FlagSet(name, "[OPTIONS] CONTAINER [CONTAINER...]", f"{verb} one or more containers", min_args=1)
        .add("-t, --time", "int", help="Seconds to wait before killing the container")
        .add("--timeout", "int", dest="time", help="Seconds to wait before killing the container")
        .add("-s, --signal", "str", help="Signal to send to the container")
    )
    opts, args = fs.parse(argv)
    timeout = opts.time if "time" in opts.changed else None
    action = cli.client.restart_container if restart else cli.client.stop_container
    return each(cli, args, lambda c: action(c, timeout=timeout, signal=opts.signal or None))


def cmd_stop(cli: Cli, argv: list[str], name: str = "stop") -> int:
    return _stop_like(cli, argv, name, "Stop", restart=False)


def cmd_restart(cli: Cli, argv: list[str], name: str = "restart") -> int:
    return _stop_like(cli, argv, name, "Restart", restart=True)


def cmd_kill(cli: Cli, argv: list[str], name: str = "kill") -> int:
    fs = FlagSet(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", min_args=1).add(
        "-s, --signal", "str", help="Signal to send to the container"
    )
    opts, args = fs.parse(argv)
    return each(cli, args, lambda c: cli.client.kill_container(c, opts.signal or None))


def cmd_rm(cli: Cli, argv: list[str], name: str = "rm") -> int:
    from dockyard.client.errors import APIError

    fs = (
        FlagSet(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", min_args=1)
        .add("-f, --force", help="Force the removal of a running container (uses SIGKILL)")
        .add("-v, --volumes", help="Remove anonymous volumes associated with the container")
        .add("-l, --link", help="Remove the specified link")
    )
    opts, args = fs.parse(argv)
    failed = False
    for container in args:
        try:
            cli.client.remove_container(container, force=opts.force, volumes=opts.volumes, link=opts.link)
        except APIError as exc:
            cli.error(str(exc))
            failed = failed or not (opts.force and exc.is_not_found)
            continue
        cli.print(container)
    return 1 if failed else 0


def cmd_pause(cli: Cli, argv: list[str], name: str = "pause") -> int:
    fs = FlagSet(name, "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", min_args=1)
    _, args = fs.parse(argv)
    return each(cli, args, cli.client.pause_container)


def cmd_unpause(cli: Cli, argv: list[str], name: str = "unpause") -> int:
    fs = FlagSet(name, "CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", min_args=1)
    _, args = fs.parse(argv)
    return each(cli, args, cli.client.unpause_container)


def cmd_wait(cli: Cli, argv: list[str], name: str = "wait") -> int:
    fs = FlagSet(
        name,
        "CONTAINER [CONTAINER...]",
        "Block until one or more containers stop, then print their exit codes",
        min_args=1,
    )
    _, args = fs.parse(argv)

    def wait(container: str) -> None:
        result = cli.client.wait_container(container)
        cli.print(str(result.get("StatusCode", 0)))

    return each(cli, args, wait, echo=False)


def cmd_rename(cli: Cli, argv: list[str], name: str = "rename") -> int:
    fs = FlagSet(name, "CONTAINER NEW_NAME", "Rename a container", min_args=2, max_args=2)
    _, (old, new) = fs.parse(argv)
    if not new.strip():
        raise StatusError(1, "Error: neither old nor new names may be empty")
    cli.client.rename_container(old, new)
    return 0


def cmd_export(cli: Cli, argv: list[str], name: str = "export") -> int:
    fs = FlagSet(
        name, "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", min_args=1, max_args=1
    ).add("-o, --output", "str", help="Write to a file, instead of STDOUT")
    opts, args = fs.parse(argv)
    if not opts.output and cli.out.isatty():
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    write_stream(cli.client.export_container(args[0]).iter_chunks(), opts.output or None, cli)
    return 0


def log_time_param(value: str, now: float | None = None) -> str:
    """docker's GetTimestamp: a duration ("10m") means that long ago; RFC 3339 or unix time as is."""
    from dockyard.cli.units import parse_go_duration

    if not value:
        return value
    duration = parse_go_duration(value)
    if duration is not None:
        return f"{(now if now is not None else time.time()) - duration:.9f}"
    if value.replace(".", "", 1).isdigit():
        return value
    from dockyard.util.timefmt import parse_rfc3339

    text = value if "T" in value else value + "T00:00:00"
    if not any(c in text[10:] for c in "Z+-"):
        text += "Z"
    try:
        return f"{parse_rfc3339(text):.9f}"
    except ValueError as exc:
        raise StatusError(1, f'invalid value for "since/until": {value}') from exc


def cmd_logs(cli: Cli, argv: list[str], name: str = "logs") -> int:
    from dockyard.cli.streaming import copy_output

    fs = (
        FlagSet(name, "[OPTIONS] CONTAINER", "Fetch the logs of a container", min_args=1, max_args=1)
        .add("-f, --follow", help="Follow log output")
        .add("-n, --tail", "str", default="all", help="Number of lines to show from the end of the logs")
        .add("-t, --timestamps", help="Show timestamps")
        .add("--since", "str", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes)")
        .add("--until", "str", help="Show logs before a timestamp or relative")
        .add("--details", help="Show extra details provided to logs")
    )
    opts, args = fs.parse(argv)
    info = cli.client.inspect_container(args[0])
    tty = bool((info.get("Config") or {}).get("Tty"))
    response = cli.client.logs(
        args[0],
        follow=opts.follow,
        since=log_time_param(opts.since) or None,
        until=log_time_param(opts.until) or None,
        timestamps=opts.timestamps,
        tail=opts.tail or "all",
        details=opts.details,
    )
    cli.out.flush()
    with response:
        copy_output(response.iter_output(tty), cli.out_binary, cli.err_binary)
    return 0

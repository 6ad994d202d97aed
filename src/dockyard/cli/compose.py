"""`dockyard compose`: docker compose's everyday commands over the same API client as the CLI."""

from __future__ import annotations

import os
import sys

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, StatusError

SERVICE_LABEL = "com.docker.compose.service"  # compose.project.SERVICE, without importing it for --help

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

USAGE = """
Usage:  dockyard compose [OPTIONS] COMMAND

Define and run multi-container applications

Options:
  -f, --file stringArray           Compose configuration files
  -p, --project-name string        Project name
      --project-directory string   Alternate working directory
      --profile stringArray        Specify a profile to enable

Commands:
  build       Build or rebuild services
  config      Parse, resolve and render the compose file
  down        Stop and remove containers, networks
  exec        Execute a command in a running container
  logs        View output from containers
  ps          List containers
  pull        Pull service images
  restart     Restart service containers
  run         Run a one-off command on a service
  start       Start services
  stop        Stop services
  up          Create and start containers
"""


def _globals(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    fs = (
        FlagSet("compose", "[OPTIONS] COMMAND", "Define and run multi-container applications", interspersed=False)
        .add("-f, --file", "list", help="Compose configuration files")
        .add("-p, --project-name", "str", help="Project name")
        .add("--project-directory", "str", help="Alternate working directory")
        .add("--profile", "list", help="Specify a profile to enable")
    )
    opts, rest = fs.parse(argv)
    return opts.values, rest


def _load(options: dict[str, Any]) -> dict[str, Any]:
    from dockyard.compose.model import find_files, load_project

    files = list(options["file"]) or find_files(options["project_directory"] or os.getcwd())
    return load_project(files, options["project_name"] or None)


def cmd_compose(cli: Cli, argv: list[str], name: str = "compose") -> int:
    from dockyard.compose.model import ComposeError

    options, rest = _globals(argv)
    if not rest:
        sys.stdout.write(USAGE)
        return 0
    command, args = rest[0], rest[1:]
    handler = _COMMANDS.get(command)
    if handler is None:
        raise StatusError(1, f'unknown docker command: "compose {command}"')
    try:
        return handler(cli, options, args)
    except ComposeError as exc:
        raise StatusError(1, str(exc)) from None


def _compose(cli: Cli, options: dict[str, Any]) -> Any:
    from dockyard.compose.project import Compose

    profiles = list(options["profile"]) + [p for p in os.environ.get("COMPOSE_PROFILES", "").split(",") if p]
    return Compose(cli.client, _load(options), lambda text: cli.err.write(text + "\n"), profiles)


def _up(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    fs = (
        FlagSet("compose up", "[OPTIONS] [SERVICE...]", "Create and start containers")
        .add("-d, --detach", help="Detached mode: Run containers in the background")
        .add("--build", help="Build images before starting containers")
        .add("--force-recreate", help="Recreate containers even if their configuration and image haven't changed")
        .add("--wait", help="Wait for services to be running|healthy. Implies detached mode.")
        .add("--abort-on-container-exit", help="Stops all containers if any container was stopped")
        .add("--exit-code-from", "str", help="Return the exit code of the selected service container")
    )
    opts, services = fs.parse(argv)
    compose = _compose(cli, options)
    names = compose.up(services or None, build=opts.build, force_recreate=opts.force_recreate)
    if opts.wait:
        compose.wait_ready(services or None)
        return 0
    if opts.detach:
        return 0
    abort = opts.abort_on_container_exit or bool(opts.exit_code_from)
    cli.err.write(f"Attaching to {', '.join(names)}\n")
    try:
        for line in compose.log_lines(services or None, follow=True, tail="all", until_first_exit=abort):
            cli.print(line)
    except KeyboardInterrupt:
        cli.err.write("Gracefully stopping... (press Ctrl+C again to force)\n")
        compose.stop(services or None)
        return 130
    if not abort:
        return 0
    cli.err.write("Aborting on container exit...\n")
    compose.stop(services or None)
    return compose.exit_code(opts.exit_code_from or None)


def _down(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    fs = (
        FlagSet("compose down", "[OPTIONS]", "Stop and remove containers, networks", max_args=0)
        .add("-v, --volumes", help='Remove named volumes declared in the "volumes" section')
        .add("-t, --timeout", "int", help="Specify a shutdown timeout in seconds")
        .add("--remove-orphans", help="Remove containers for services not defined in the Compose file")
    )
    opts, _ = fs.parse(argv)
    _compose(cli, options).down(volumes=opts.volumes, timeout=opts.timeout if "timeout" in opts.changed else None)
    return 0


def _ps(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    from dockyard.cli.formatting import ContainerRow

    fs = (
        FlagSet("compose ps", "[OPTIONS] [SERVICE...]", "List containers")
        .add("-a, --all", help="Show all stopped containers")
        .add("-q, --quiet", help="Only display IDs")
        .add("--services", help="Display services")
    )
    opts, services = fs.parse(argv)
    compose = _compose(cli, options)
    containers = [c for c in compose.containers(all=opts.all) if not services or c["Labels"].get(
        SERVICE_LABEL) in services]  # fmt: skip
    if opts.services:
        for service in dict.fromkeys(c["Labels"].get(SERVICE_LABEL, "") for c in containers):
            cli.print(service)
        return 0
    if opts.quiet:
        for c in containers:
            cli.print(c["Id"])
        return 0
    rows = [ContainerRow(c) for c in containers]
    header = ("NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS")
    table = [header] + [
        (r.Names(), r.Image(), r.Command(), c["Labels"].get(SERVICE_LABEL, ""), r.RunningFor(),
         r.Status(), r.Ports())
        for r, c in zip(rows, containers, strict=True)
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cli.print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _logs(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    fs = (
        FlagSet("compose logs", "[OPTIONS] [SERVICE...]", "View output from containers")
        .add("-f, --follow", help="Follow log output")
        .add("-n, --tail", "str", default="all", help="Number of lines to show from the end of the logs")
    )
    opts, services = fs.parse(argv)
    for line in _compose(cli, options).log_lines(services or None, follow=opts.follow, tail=opts.tail):
        cli.print(line)
    return 0


def _build(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    _, services = FlagSet("compose build", "[OPTIONS] [SERVICE...]", "Build or rebuild services").parse(argv)
    compose = _compose(cli, options)
    for name, service in compose.project["services"].items():
        if service.get("build") and (not services or name in services):
            compose.build_service(name, service, service.get("image") or f"{compose.name}-{name}")
    return 0


def _config(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    from dockyard.compose.model import dump

    opts, _ = (
        FlagSet("compose config", "[OPTIONS]", "Parse, resolve and render the compose file", max_args=0)
        .add("--services", help="Print the service names, one per line")
        .parse(argv)
    )
    project = _load(options)
    if opts.services:
        for service in project["services"]:
            cli.print(service)
        return 0
    cli.out.write(dump(project))
    return 0


def _stop(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    opts, services = (
        FlagSet("compose stop", "[OPTIONS] [SERVICE...]", "Stop services")
        .add("-t, --timeout", "int", help="Specify a shutdown timeout in seconds")
        .parse(argv)
    )
    _compose(cli, options).stop(services or None, opts.timeout if "timeout" in opts.changed else None)
    return 0


def _pull(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    _, services = FlagSet("compose pull", "[OPTIONS] [SERVICE...]", "Pull service images").parse(argv)
    _compose(cli, options).pull(services or None)
    return 0


def _start(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    _, services = FlagSet("compose start", "[SERVICE...]", "Start services").parse(argv)
    _compose(cli, options).start(services or None)
    return 0


def _restart(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    _, services = FlagSet("compose restart", "[SERVICE...]", "Restart service containers").parse(argv)
    compose = _compose(cli, options)
    compose.stop(services or None)
    compose.start(services or None)
    return 0


def _run(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    from dockyard.cli.run import attach_start_wait

    fs = (
        FlagSet(
            "compose run",
            "[OPTIONS] SERVICE [COMMAND] [ARGS...]",
            "Run a one-off command on a service",
            interspersed=False,
            min_args=1,
        )
        .add("-d, --detach", help="Run container in background and print container ID")
        .add("--rm", help="Automatically remove the container when it exits")
        .add("-e, --env", "list", help="Set environment variables")
        .add("-T, --no-TTY", help="Disable pseudo-TTY allocation (default: auto-detected)")
        .add("--entrypoint", "str", help="Override the entrypoint of the image")
        .add("-u, --user", "str", help="Run as specified username or uid")
        .add("-w, --workdir", "str", help="Working directory inside the container")
        .add("--no-deps", help="Don't start linked services")
    )
    opts, (service, *command) = fs.parse(argv)
    interactive = not opts.detach  # compose run keeps stdin open (its -i defaults to true)
    tty = interactive and not opts.no_TTY and sys.stdin.isatty() and sys.stdout.isatty()
    cid, body = _compose(cli, options).one_off(
        service, command or None, env=opts.env, entrypoint=[opts.entrypoint] if opts.entrypoint else None,
        user=opts.user, workdir=opts.workdir, tty=tty, interactive=interactive,
        remove=opts.rm, with_dependencies=not opts.no_deps,
    )  # fmt: skip
    if opts.detach:
        cli.client.start_container(cid)
        cli.print(cid)
        return 0
    return attach_start_wait(cli, cid, body, opts.rm)


def _exec(cli: Cli, options: dict[str, Any], argv: list[str]) -> int:
    from dockyard.cli.execs import cmd_exec

    fs = (
        FlagSet(
            "compose exec",
            "[OPTIONS] SERVICE COMMAND [ARGS...]",
            "Execute a command in a running container",
            interspersed=False,
            min_args=2,
        )
        .add("-T, --no-TTY", help="Disable pseudo-TTY allocation")
        .add("-e, --env", "list", help="Set environment variables")
        .add("-u, --user", "str", help="Run the command as this user")
        .add("-w, --workdir", "str", help="Path to workdir directory for this command")
        .add("--index", "int", default=1, help="Index of the container if service has multiple replicas")
    )
    opts, (service, *command) = fs.parse(argv)
    matches = [c for c in _compose(cli, options).containers(service) if c["State"] == "running"]
    target = next(
        (c for c in matches if c["Labels"].get("com.docker.compose.container-number") == str(opts.index)), None
    )
    if target is None:
        raise StatusError(1, f'service "{service}" is not running')
    flags = ["-i"] + (["-t"] if not opts.no_TTY and sys.stdin.isatty() and sys.stdout.isatty() else [])
    for env in opts.env:
        flags += ["-e", env]
    if opts.user:
        flags += ["-u", opts.user]
    if opts.workdir:
        flags += ["-w", opts.workdir]
    return cmd_exec(cli, [*flags, target["Id"], *command], "exec")


_COMMANDS = {
    "up": _up, "down": _down, "ps": _ps, "logs": _logs, "build": _build, "config": _config, "run": _run, "pull": _pull,
    "stop": _stop, "start": _start, "restart": _restart, "exec": _exec,
}  # fmt: skip

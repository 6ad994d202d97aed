"""`dockyard` entry point: global flags, then a lazily imported verb module (the CLI must start fast)."""

from __future__ import annotations

import sys

# verb -> (module under dockyard.cli, function). Modules are imported only when their verb runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "cmd_run"),
    "create": ("run", "cmd_create"),
    "start": ("containers", "cmd_start"),
    "exec": ("execs", "cmd_exec"),
    "attach": ("execs", "cmd_attach"),
    "stop": ("containers", "cmd_stop"),
    "kill": ("containers", "cmd_kill"),
    "restart": ("containers", "cmd_restart"),
    "rm": ("containers", "cmd_rm"),
    "ps": ("containers", "cmd_ps"),
    "logs": ("containers", "cmd_logs"),
    "wait": ("containers", "cmd_wait"),
    "rename": ("containers", "cmd_rename"),
    "export": ("containers", "cmd_export"),
    "pause": ("containers", "cmd_pause"),
    "unpause": ("containers", "cmd_unpause"),
    "inspect": ("system", "cmd_inspect"),
    "version": ("system", "cmd_version"),
    "info": ("system", "cmd_info"),
    "events": ("system", "cmd_events"),
    "images": ("images", "cmd_images"),
    "build": ("build", "cmd_build"),
    "compose": ("compose", "cmd_compose"),
    "tag": ("images", "cmd_tag"),
    "rmi": ("images", "cmd_rmi"),
    "history": ("images", "cmd_history"),
    "import": ("images", "cmd_import"),
    "save": ("images", "cmd_save"),
    "load": ("images", "cmd_load"),
    "pull": ("images", "cmd_pull"),
    "registry": ("registry", "cmd_registry"),
    "push": ("registry_client", "cmd_push"),
    "login": ("registry_client", "cmd_login"),
    "logout": ("registry_client", "cmd_logout"),
    "search": ("registry_client", "cmd_search"),
    **{verb: ("container_ops", f"cmd_{verb}") for verb in ("top", "stats", "cp", "diff", "commit", "update", "port")},
}

_CONTAINER_VERBS = (
    "run",
    "create",
    "start",
    "stop",
    "kill",
    "restart",
    "logs",
    "wait",
    "rename",
    "export",
    "pause",
    "unpause",
    "exec",
    "attach",
)
_IMAGE_VERBS = ("tag", "history", "import", "save", "load", "pull", "push")
MANAGEMENT: dict[str, dict[str, tuple[str, str]]] = {
    "container": {
        **{verb: COMMANDS[verb] for verb in _CONTAINER_VERBS},
        "ls": COMMANDS["ps"],
        "list": COMMANDS["ps"],
        "ps": COMMANDS["ps"],
        "rm": COMMANDS["rm"],
        "remove": COMMANDS["rm"],
        "inspect": ("system", "cmd_container_inspect"),
        **{verb: COMMANDS[verb] for verb in ("top", "stats", "cp", "diff", "commit", "update", "port")},
        "prune": ("container_ops", "cmd_container_prune"),
    },
    "image": {
        **{verb: COMMANDS[verb] for verb in _IMAGE_VERBS},
        "ls": COMMANDS["images"],
        "list": COMMANDS["images"],
        "rm": COMMANDS["rmi"],
        "remove": COMMANDS["rmi"],
        "inspect": ("system", "cmd_image_inspect"),
        "prune": ("container_ops", "cmd_image_prune"),
        "build": ("build", "cmd_build"),
    },
    "volume": {
        "create": ("volumes", "cmd_volume_create"),
        "ls": ("volumes", "cmd_volume_ls"),
        "list": ("volumes", "cmd_volume_ls"),
        "inspect": ("volumes", "cmd_volume_inspect"),
        "rm": ("volumes", "cmd_volume_rm"),
        "remove": ("volumes", "cmd_volume_rm"),
        "prune": ("volumes", "cmd_volume_prune"),
    },
    "network": {
        **{verb: ("networks", f"cmd_network_{verb}") for verb in ("create", "ls", "inspect", "rm", "prune")},
        **{verb: ("networks", f"cmd_network_{verb}") for verb in ("connect", "disconnect")},
        "list": ("networks", "cmd_network_ls"),
        "remove": ("networks", "cmd_network_rm"),
    },
    "system": {
        "df": ("container_ops", "cmd_system_df"),
        "prune": ("container_ops", "cmd_system_prune"),
        "info": COMMANDS["info"],
        "events": COMMANDS["events"],
    },
}

USAGE = """
Usage:  dockyard [OPTIONS] COMMAND

A Docker-compatible container engine

Common Commands:
  run         Create and run a new container from an image
  build       Build an image from a Dockerfile
  compose     Define and run multi-container applications
  ps          List containers
  images      List images
  version     Show the dockyard version information
  info        Display system-wide information

Management Commands:
  container   Manage containers
  image       Manage images
  network     Manage networks
  volume      Manage volumes
  system      Manage dockyard (df, prune, info)
  daemon      Run the dockyard daemon

Commands:
  create, start, stop, kill, exec, attach, restart, rm, logs, wait, rename, export, pause, unpause, inspect,
  top, stats, cp, diff, commit, update, port,
  tag, rmi, history, import, save, load, pull, push, login, logout, search

Global Options:
  -H, --host string   Daemon socket to connect to (default unix:///run/dockyard/dockyard.sock)
  -v, --version       Print version information and quit

Run 'dockyard COMMAND --help' for more information on a command.
"""

_GLOBAL_WITH_VALUE = {"-H", "--host", "-l", "--log-level", "--config", "-c", "--context"}


def _split_globals(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Consume global flags before the verb (docker's root command flags)."""
    options: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_WITH_VALUE:
            if not eq:
                if i + 1 >= len(argv):
                    raise _global_error(f"flag needs an argument: {name}")
                i += 1
                value = argv[i]
            options[name.lstrip("-")[:1] if name in ("-H", "--host") else name.lstrip("-")] = value
        elif arg.startswith("-H") and len(arg) > 2:
            options["H"] = arg[2:]
        elif arg in ("-v", "--version"):
            options["version"] = "1"
        elif arg in ("-h", "--help"):
            options["help"] = "1"
        elif arg in ("-D", "--debug", "--tls", "--tlsverify"):
            pass
        else:
            raise _global_error(
                f"unknown flag: {name}" if arg.startswith("--") else f"unknown shorthand flag: '{arg[1:2]}' in {arg}"
            )
        i += 1
    return options, argv[i:]


def _global_error(message: str) -> Exception:
    from dockyard.cli.flags import StatusError

    return StatusError(125, f"{message}\nSee 'dockyard --help'.")


def _resolve(args: list[str]) -> tuple[tuple[str, str] | None, str, list[str]]:
    verb = args[0]
    if verb in MANAGEMENT:
        if len(args) < 2 or args[1] in ("-h", "--help"):
            return None, verb, []
        sub = MANAGEMENT[verb].get(args[1])
        return sub, f"{verb} {args[1]}", args[2:]
    return COMMANDS.get(verb), verb, args[1:]


def _import(name: str):
    """importlib.import_module without importing importlib (and warnings) on every start."""
    __import__(name)
    return sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (docker's codes: 125 usage/daemon, 1 errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["daemon"]:
        daemon = _import("dockyard.daemon.main")
        return int(daemon.main(argv[1:]) or 0)
    from dockyard.cli.flags import HelpRequested, StatusError

    try:
        options, args = _split_globals(argv)
        if options.get("version"):
            from dockyard import __version__

            sys.stdout.write(f"dockyard version {__version__}\n")
            return 0
        if not args or options.get("help") or args[0] == "help":
            sys.stdout.write(USAGE)
            return 0
        target, name, rest = _resolve(args)
        if target is None:
            if args[0] in MANAGEMENT:
                sys.stdout.write(USAGE)
                return 0
            raise StatusError(
                1,
                f"dockyard: unknown command: dockyard {' '.join(args[:2])}\n\n"
                "Run 'dockyard --help' for more information",
            )
        module_name, function_name = target
        module = _import(f"dockyard.cli.{module_name}")
        from dockyard.cli.common import Cli

        cli = Cli(host=options.get("H"))
        return int(getattr(module, function_name)(cli, rest, name) or 0)
    except HelpRequested as exc:
        sys.stdout.write(exc.text)
        return 0
    except StatusError as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.status or 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        return _report(exc)


def _report(exc: Exception) -> int:
    """Client errors (daemon unreachable, API errors, bad templates) print one line, exit 1."""
    from dockyard.cli.template import TemplateError
    from dockyard.client.errors import ClientError

    if isinstance(exc, ClientError | TemplateError):
        sys.stderr.write(f"{exc}\n")
        return 1
    raise exc


if __name__ == "__main__":
    raise SystemExit(main())

"""`volume` verbs: create, ls, inspect, rm, prune (docker's flags, tables and messages)."""

from __future__ import annotations

from dockyard.cli.common import Cli, each
from dockyard.cli.containers import parse_filters
from dockyard.cli.flags import FlagSet, StatusError
from dockyard.cli.template import FieldProvider

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VOLUMES_TABLE = "table {{.Driver}}\t{{.Name}}"


class VolumeRow(FieldProvider):
    """One `volume ls` row: docker's volumeContext fields."""

    fields = (
        "Name", "Driver", "Scope", "Mountpoint", "Labels", "Label", "Links", "Size", "Availability", "Group", "Status",
    )  # fmt: skip
    headers = {
        "Name": "VOLUME NAME",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT",
        "Labels": "LABELS",
        "Label": "LABEL",
        "Links": "LINKS",
        "Size": "SIZE",
        "Availability": "AVAILABILITY",
        "Group": "GROUP",
        "Status": "STATUS",
    }

    def __init__(self, volume: dict[str, Any]) -> None:
        self.v = volume

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in sorted(self.fields) if name != "Label"}

    def Name(self) -> str:
        return self.v.get("Name", "")

    def Driver(self) -> str:
        return self.v.get("Driver", "")

    def Scope(self) -> str:
        return self.v.get("Scope", "")

    def Mountpoint(self) -> str:
        return self.v.get("Mountpoint", "")

    def Labels(self) -> str:
        labels = self.v.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:
        return (self.v.get("Labels") or {}).get(name, "")

    def Links(self) -> str:
        usage = self.v.get("UsageData")
        return str(usage.get("RefCount", 0)) if usage else "N/A"

    def Size(self) -> str:
        from dockyard.cli.units import human_size

        usage = self.v.get("UsageData")
        return human_size(usage.get("Size", 0)) if usage else "N/A"

    def Availability(self) -> str:
        return "N/A"

    def Group(self) -> str:
        return "N/A"

    def Status(self) -> str:
        return "N/A"


def _key_values(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if what == "opt" and not eq:
            raise StatusError(125, f'invalid argument "{item}" for "-o, --opt" flag: invalid key value pair format')
        out[key] = value
    return out


def cmd_volume_create(cli: Cli, argv: list[str], name: str = "volume create") -> int:
    fs = (
        FlagSet(name, "[OPTIONS] [VOLUME]", "Create a volume", max_args=1)
        .add("-d, --driver", "str", default="local", help="Specify volume driver name")
        .add("--label", "list", help="Set metadata for a volume")
        .add("-o, --opt", "list", help="Set driver specific options")
        .add("--name", "str", help="Specify volume name")
    )
    opts, args = fs.parse(argv)
    if args and opts.name and args[0] != opts.name:
        raise StatusError(
            1, "conflicting options: cannot specify a volume-name through both --name and as a positional arg"
        )
    volume = cli.client.create_volume(
        name=args[0] if args else opts.name,
        driver=opts.driver,
        driver_opts=_key_values(opts.opt, "opt"),
        labels=_key_values(opts.label, "label"),
    )
    cli.print(volume["Name"])
    return 0


def cmd_volume_ls(cli: Cli, argv: list[str], name: str = "volume ls") -> int:
    from dockyard.cli.formatting import render

    fs = (
        FlagSet(name, "[OPTIONS]", "List volumes", max_args=0)
        .add("-q, --quiet", help="Only display volume names")
        .add("-f, --filter", "list", help="Provide filter values (e.g. 'dangling=true')")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, _ = fs.parse(argv)
    volumes = cli.client.volumes(parse_filters(opts.filter)).get("Volumes") or []
    fmt = opts.format or "table"
    if opts.quiet and fmt == "table":
        fmt = "{{.Name}}"
    rows = [VolumeRow(v) for v in sorted(volumes, key=lambda v: v.get("Name", ""))]
    cli.out.write(render(fmt, rows, VolumeRow.headers, VOLUMES_TABLE))
    return 0


def cmd_volume_inspect(cli: Cli, argv: list[str], name: str = "volume inspect") -> int:
    from dockyard.cli.system import inspect_objects

    what = "Display detailed information on one or more volumes"
    fs = FlagSet(name, "[OPTIONS] VOLUME [VOLUME...]", what, min_args=1)
    opts, args = fs.add("-f, --format", "str", help="Format output using a custom template").parse(argv)
    return inspect_objects(cli, args, "volume", opts.format or "")


def cmd_volume_rm(cli: Cli, argv: list[str], name: str = "volume rm") -> int:
    fs = FlagSet(name, "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", min_args=1)
    opts, args = fs.add("-f, --force", help="Force the removal of one or more volumes").parse(argv)
    return each(cli, args, lambda volume: cli.client.remove_volume(volume, force=opts.force))


def cmd_volume_prune(cli: Cli, argv: list[str], name: str = "volume prune") -> int:
    from dockyard.cli.container_ops import _print_report, _prune_flags, confirm

    fs = _prune_flags(name, "Remove unused local volumes", "Remove all unused volumes, not just anonymous ones")
    opts, _ = fs.parse(argv)
    filters = parse_filters(opts.filter)
    if opts.all:
        if "all" in filters:
            raise StatusError(125, "conflicting options: cannot specify both --all and --filter all=1")
        filters["all"] = ["true"]
    what = "all local volumes" if opts.all else "anonymous local volumes"
    if not opts.force and not confirm(cli, f"WARNING! This will remove {what} not used by at least one container."):
        return 0
    report = cli.client.prune_volumes(filters)
    deleted = report.get("VolumesDeleted") or []
    _print_report(cli, ["Deleted Volumes:", *deleted, ""] if deleted else [], int(report.get("SpaceReclaimed") or 0))
    return 0

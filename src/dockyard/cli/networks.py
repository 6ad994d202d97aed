"""`network` verbs: create, ls, inspect, rm, connect, disconnect, prune (docker's flags and output)."""

from __future__ import annotations

from dockyard.cli.common import Cli, each
from dockyard.cli.containers import parse_filters
from dockyard.cli.flags import FlagSet, StatusError
from dockyard.cli.template import FieldProvider

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NETWORKS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


class NetworkRow(FieldProvider):
    """One `network ls` row: docker's networkContext fields."""

    fields = ("ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels", "Label", "CreatedAt")
    headers = {
        "ID": "NETWORK ID",
        "Name": "NAME",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "IPv6": "IPV6",
        "Internal": "INTERNAL",
        "Labels": "LABELS",
        "Label": "LABEL",
        "CreatedAt": "CREATED AT",
    }

    def __init__(self, network: dict[str, Any], trunc: bool = True) -> None:
        self.n = network
        self.trunc = trunc

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in sorted(self.fields) if name != "Label"}

    def ID(self) -> str:
        return self.n["Id"][:12] if self.trunc else self.n["Id"]

    def Name(self) -> str:
        return self.n.get("Name", "")

    def Driver(self) -> str:
        return self.n.get("Driver", "")

    def Scope(self) -> str:
        return self.n.get("Scope", "")

    def IPv6(self) -> str:
        return str(bool(self.n.get("EnableIPv6"))).lower()

    def Internal(self) -> str:
        return str(bool(self.n.get("Internal"))).lower()

    def Labels(self) -> str:
        labels = self.n.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:
        return (self.n.get("Labels") or {}).get(name, "")

    def CreatedAt(self) -> str:
        return self.n.get("Created", "")


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if flag == "opt" and not eq:
            raise StatusError(125, f'invalid argument "{item}" for "-o, --opt" flag: invalid key value pair format')
        out[key] = value
    return out


def cmd_network_create(cli: Cli, argv: list[str], name: str = "network create") -> int:
    fs = (
        FlagSet(name, "[OPTIONS] NETWORK", "Create a network", min_args=1, max_args=1)
        .add("-d, --driver", "str", default="bridge", help="Driver to manage the Network")
        .add("--subnet", "list", help="Subnet in CIDR format that represents a network segment")
        .add("--gateway", "list", help="IPv4 or IPv6 Gateway for the master subnet")
        .add("--ip-range", "list", help="Allocate container ip from a sub-range")
        .add("--internal", help="Restrict external access to the network")
        .add("--attachable", help="Enable manual container attachment")
        .add("--label", "list", help="Set metadata on a network")
        .add("-o, --opt", "list", help="Set driver specific options")
    )
    opts, args = fs.parse(argv)
    if len(opts.gateway) > len(opts.subnet) or len(opts.ip_range) > len(opts.subnet):
        raise StatusError(125, "every ip-range or gateway must have a corresponding subnet")
    configs = []
    for i, subnet in enumerate(opts.subnet):
        config = {"Subnet": subnet}
        if i < len(opts.gateway):
            config["Gateway"] = opts.gateway[i]
        if i < len(opts.ip_range):
            config["IPRange"] = opts.ip_range[i]
        configs.append(config)
    body = {
        "Name": args[0],
        "Driver": opts.driver,
        "IPAM": {"Driver": "default", "Config": configs, "Options": {}},
        "Internal": opts.internal,
        "Attachable": opts.attachable,
        "Options": _pairs(opts.opt, "opt"),
        "Labels": _pairs(opts.label, "label"),
    }
    cli.print(cli.client.create_network(body)["Id"])
    return 0


def cmd_network_ls(cli: Cli, argv: list[str], name: str = "network ls") -> int:
    from dockyard.cli.formatting import render

    fs = (
        FlagSet(name, "[OPTIONS]", "List networks", max_args=0)
        .add("-q, --quiet", help="Only display network IDs")
        .add("-f, --filter", "list", help="Provide filter values (e.g. 'driver=bridge')")
        .add("--format", "str", help="Format output using a custom template")
        .add("--no-trunc", help="Do not truncate the output")
    )
    opts, _ = fs.parse(argv)
    networks = cli.client.networks(parse_filters(opts.filter)) or []
    fmt = opts.format or "table"
    if opts.quiet and fmt == "table":
        fmt = "{{.ID}}"
    rows = [NetworkRow(n, not opts.no_trunc) for n in sorted(networks, key=lambda n: n.get("Name", ""))]
    cli.out.write(render(fmt, rows, NetworkRow.headers, NETWORKS_TABLE))
    return 0


def cmd_network_inspect(cli: Cli, argv: list[str], name: str = "network inspect") -> int:
    from dockyard.cli.system import inspect_objects

    what = "Display detailed information on one or more networks"
    fs = FlagSet(name, "[OPTIONS] NETWORK [NETWORK...]", what, min_args=1)
    opts, args = fs.add("-f, --format", "str", help="Format output using a custom template").parse(argv)
    return inspect_objects(cli, args, "network", opts.format or "")


def cmd_network_rm(cli: Cli, argv: list[str], name: str = "network rm") -> int:
    fs = FlagSet(name, "NETWORK [NETWORK...]", "Remove one or more networks", min_args=1)
    fs.add("-f, --force", help="Do not error if the network does not exist")
    opts, args = fs.parse(argv)

    def remove(network: str) -> None:
        from dockyard.client.errors import APIError

        try:
            cli.client.remove_network(network)
        except APIError as exc:
            if not (opts.force and exc.is_not_found):
                raise

    return each(cli, args, remove)


def cmd_network_connect(cli: Cli, argv: list[str], name: str = "network connect") -> int:
    fs = (
        FlagSet(name, "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network", min_args=2, max_args=2)
        .add("--alias", "list", help="Add network-scoped alias for the container")
        .add("--ip", "str", help="IPv4 address (e.g., 172.30.100.104)")
    )
    opts, args = fs.parse(argv)
    config: dict[str, Any] = {"Aliases": opts.alias or None}
    if opts.ip:
        config["IPAMConfig"] = {"IPv4Address": opts.ip}
    cli.client.connect_network(args[0], args[1], config)
    return 0


def cmd_network_disconnect(cli: Cli, argv: list[str], name: str = "network disconnect") -> int:
    fs = FlagSet(name, "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network", min_args=2, max_args=2)
    opts, args = fs.add("-f, --force", help="Force the container to disconnect from a network").parse(argv)
    cli.client.disconnect_network(args[0], args[1], opts.force)
    return 0


def cmd_network_prune(cli: Cli, argv: list[str], name: str = "network prune") -> int:
    from dockyard.cli.container_ops import confirm

    fs = (
        FlagSet(name, "[OPTIONS]", "Remove all unused networks", max_args=0)
        .add("--filter", "list", help="Provide filter values (e.g. 'until=<timestamp>')")
        .add("-f, --force", help="Do not prompt for confirmation")
    )
    opts, _ = fs.parse(argv)
    if not opts.force and not confirm(
        cli, "WARNING! This will remove all custom networks not used by at least one container."
    ):
        return 0
    deleted = cli.client.prune_networks(parse_filters(opts.filter)).get("NetworksDeleted") or []
    if deleted:
        cli.out.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted))
    return 0

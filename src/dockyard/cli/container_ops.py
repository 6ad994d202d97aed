"""Verbs: top, stats, cp, diff, commit, update, port, container prune, image prune, system df/prune."""

from __future__ import annotations

import os
import posixpath
import sys
import threading
import time
from dataclasses import dataclass

from dockyard.cli.common import Cli, each
from dockyard.cli.containers import parse_filters
from dockyard.cli.flags import FlagSet, StatusError
from dockyard.cli.template import FieldProvider

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# ------------------------------------------------------------------------------------------ top / diff


def cmd_top(cli: Cli, argv: list[str], name: str = "top") -> int:
    from dockyard.cli.formatting import tabwrite

    fs = FlagSet(
        name, "CONTAINER [ps OPTIONS]", "Display the running processes of a container", min_args=1, interspersed=False
    )
    _, args = fs.parse(argv)
    top = cli.client.top_container(args[0], " ".join(args[1:]) or None)
    lines = ["\t".join(top.get("Titles") or [])] + ["\t".join(p) for p in top.get("Processes") or []]
    cli.out.write(tabwrite("\n".join(lines) + "\n", minwidth=20, padding=3))
    return 0


CHANGE_KINDS = {0: "C", 1: "A", 2: "D"}


def cmd_diff(cli: Cli, argv: list[str], name: str = "diff") -> int:
    fs = FlagSet(
        name, "CONTAINER", "Inspect changes to files or directories on a container's filesystem", min_args=1, max_args=1
    )
    _, args = fs.parse(argv)
    for change in cli.client.container_changes(args[0]):
        cli.print(f"{CHANGE_KINDS.get(change['Kind'], '?')} {change['Path']}")
    return 0


# ---------------------------------------------------------------------------------------------- stats
def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, %.4g (7.657GiB)."""
    from dockyard.cli.system import _binary_size

    return _binary_size(size)


@dataclass
class StatsEntry:
    """What docker's stats table shows for one container, computed from a StatsResponse."""

    container: str
    name: str = ""
    id: str = ""
    cpu: float = 0.0
    memory: float = 0.0
    memory_limit: float = 0.0
    memory_percent: float = 0.0
    net_rx: float = 0.0
    net_tx: float = 0.0
    block_read: float = 0.0
    block_write: float = 0.0
    pids: int = 0
    valid: bool = False

    @classmethod
    def from_stats(cls, container: str, s: dict[str, Any]) -> StatsEntry:
        entry = cls(container, name=(s.get("name") or "").lstrip("/"), id=s.get("id") or "", valid=True)
        cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
            "total_usage", 0
        )
        system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
        if system_delta > 0 and cpu_delta > 0:
            entry.cpu = cpu_delta / system_delta * online * 100.0
        mem = s.get("memory_stats") or {}
        usage, stats = mem.get("usage", 0), mem.get("stats") or {}
        cache = stats.get("total_inactive_file", stats.get("inactive_file", 0))
        entry.memory = usage - cache if cache < usage else usage
        entry.memory_limit = mem.get("limit", 0)
        if entry.memory_limit:
            entry.memory_percent = entry.memory / entry.memory_limit * 100.0
        for net in (s.get("networks") or {}).values():
            entry.net_rx += net.get("rx_bytes", 0)
            entry.net_tx += net.get("tx_bytes", 0)
        for item in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            op = (item.get("op") or " ")[0].lower()
            if op == "r":
                entry.block_read += item.get("value", 0)
            elif op == "w":
                entry.block_write += item.get("value", 0)
        entry.pids = (s.get("pids_stats") or {}).get("current", 0)
        return entry


class StatsRow(FieldProvider):
    fields = ("Container", "Name", "ID", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")
    headers = {
        "Container": "CONTAINER",
        "Name": "NAME",
        "ID": "CONTAINER ID",
        "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %",
        "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    }

    def __init__(self, entry: StatsEntry, trunc: bool = True) -> None:
        self.e = entry
        self.trunc = trunc

    def _or_dashes(self, text: str, dashes: str = "--") -> str:
        return text if self.e.valid else dashes

    def Container(self) -> str:
        return self.e.container

    def Name(self) -> str:
        return self.e.name or "--"

    def ID(self) -> str:
        return self.e.id[:12] if self.trunc else self.e.id

    def CPUPerc(self) -> str:
        return self._or_dashes(f"{self.e.cpu:.2f}%")

    def MemUsage(self) -> str:
        return self._or_dashes(f"{bytes_size(self.e.memory)} / {bytes_size(self.e.memory_limit)}", "-- / --")

    def MemPerc(self) -> str:
        return self._or_dashes(f"{self.e.memory_percent:.2f}%")

    def NetIO(self) -> str:
        from dockyard.cli.units import human_size

        return self._or_dashes(f"{human_size(self.e.net_rx, 3)} / {human_size(self.e.net_tx, 3)}", "-- / --")

    def BlockIO(self) -> str:
        from dockyard.cli.units import human_size

        return self._or_dashes(f"{human_size(self.e.block_read, 3)} / {human_size(self.e.block_write, 3)}", "-- / --")

    def PIDs(self) -> str:
        return self._or_dashes(str(self.e.pids))


STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


class _Collector:
    """One thread per container reading its stats stream into the latest entry."""

    def __init__(self, cli: Cli, containers: list[str], stream: bool) -> None:
        self.entries = {c: StatsEntry(c) for c in containers}
        self.errors: dict[str, str] = {}
        self.threads = [threading.Thread(target=self._run, args=(cli, c, stream), daemon=True) for c in containers]
        for thread in self.threads:
            thread.start()

    def _run(self, cli: Cli, container: str, stream: bool) -> None:
        from dockyard.client.api import APIClient
        from dockyard.client.errors import ClientError

        client = APIClient(cli.client.host)  # one connection per thread
        try:
            with client.container_stats(container, stream=stream) as response:
                for sample in response.iter_json():
                    self.entries[container] = StatsEntry.from_stats(container, sample)
        except ClientError as exc:
            self.errors[container] = str(exc)


def cmd_stats(cli: Cli, argv: list[str], name: str = "stats") -> int:
    from dockyard.cli.formatting import render

    fs = (
        FlagSet(name, "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics")
        .add("-a, --all", help="Show all containers (default shows just running)")
        .add("--no-stream", help="Disable streaming stats and only pull the first result")
        .add("--no-trunc", help="Do not truncate output")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, args = fs.parse(argv)
    containers = args or [c["Id"][:12] for c in cli.client.containers(all=opts.all)]
    if args:
        for container in args:  # docker checks every named container first
            cli.client.inspect_container(container)
    collector = _Collector(cli, containers, stream=not opts.no_stream)
    fmt = opts.format or "table"

    def table() -> str:
        rows = [StatsRow(collector.entries[c], trunc=not opts.no_trunc) for c in containers]
        return render(fmt, rows, StatsRow.headers, STATS_TABLE)

    if opts.no_stream:
        for thread in collector.threads:
            thread.join()
        if collector.errors and args:
            raise StatusError(1, "\n".join(collector.errors.values()))
        cli.out.write(table())
        return 0
    tty = cli.out.isatty()
    try:
        while True:
            time.sleep(1.0)
            cli.out.write(("\033[2J\033[H" if tty else "") + table())
            cli.out.flush()
            if args and len(collector.errors) == len(containers):
                raise StatusError(1, "\n".join(collector.errors.values()))
    except KeyboardInterrupt:
        return 0


# ------------------------------------------------------------------------------------------------- cp
class CopyError(StatusError):
    def __init__(self, message: str) -> None:
        super().__init__(1, message)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: "ctr:path" -> (ctr, path); local paths (absolute, ./x, no colon) -> ("", arg)."""
    if arg.startswith("/") or arg.startswith("."):
        return "", arg
    container, sep, path = arg.partition(":")
    return (container, path) if sep else ("", arg)


def split_dir_entry(path: str) -> tuple[str, str]:
    """archive.SplitPathDirEntry: ("dir", "base"), with "dir/." giving base "."."""
    cleaned = posixpath.normpath(path)
    if posixpath.basename(path) == "." or path.endswith("/."):
        cleaned += "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned)


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.") or path == "."


@dataclass
class CopyPlan:
    """Where to extract and how to rename the archive's top entry (archive.PrepareArchiveCopy)."""

    directory: str
    rename_from: str | None = None  # the archive's top entry ...
    rename_to: str | None = None  # ... becomes this name in `directory`


def plan_copy(
    src_path: str, src_is_dir: bool, dst_path: str, dst_exists: bool, dst_is_dir: bool, rebase_name: str = ""
) -> CopyPlan:
    """docker's rules: into an existing directory as is; a directory never onto a file; otherwise the
    top entry takes the destination's name; a missing destination ending in "/" must be a directory."""
    dst_dir, dst_base = split_dir_entry(dst_path)
    _, src_base = split_dir_entry(src_path)
    src_base = rebase_name or src_base
    if dst_exists and dst_is_dir:
        return CopyPlan(dst_path)
    if dst_exists and src_is_dir:
        raise CopyError("cannot copy a directory to a file")
    if not dst_exists and not src_is_dir and asserts_directory(dst_path):
        raise CopyError(f'destination directory "{dst_path}" must exist')
    return CopyPlan(dst_dir, src_base, dst_base)


def cmd_cp(cli: Cli, argv: list[str], name: str = "cp") -> int:
    fs = (
        FlagSet(
            name,
            "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
            "Copy files/folders between a container and the local filesystem",
            min_args=2,
            max_args=2,
        )
        .add("-a, --archive", help="Archive mode (copy all uid/gid information)")
        .add("-L, --follow-link", help="Always follow symbol link in SRC_PATH")
        .add("-q, --quiet", help="Suppress progress output during copy")
    )
    opts, (src, dst) = fs.parse(argv)
    src_ctr, src_path = split_cp_arg(src)
    dst_ctr, dst_path = split_cp_arg(dst)
    if src_ctr and dst_ctr:
        raise CopyError("copying between containers is not supported")
    if not src_ctr and not dst_ctr:
        raise CopyError("must specify at least one container source")
    if src_ctr:
        if not src_path:
            raise CopyError("filesystem path cannot be empty")
        copied = copy_from_container(cli, src_ctr, src_path, dst, opts.follow_link)
        target = dst
    else:
        if not dst_path:
            raise CopyError("filesystem path cannot be empty")
        copied = copy_to_container(cli, src, dst_ctr, dst_path, opts.follow_link, opts.archive)
        target = dst
    if not opts.quiet and dst != "-" and cli.err.isatty():
        from dockyard.cli.units import human_size

        cli.error(f"Successfully copied {human_size(copied)} to {target}")
    return 0


class _Counting:
    """Counts the bytes a stream delivers (for the "Successfully copied" line)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.count += len(data)
        return data


def copy_from_container(cli: Cli, container: str, path: str, dst: str, follow_link: bool) -> int:
    from dockyard.daemon.archive import GO_MODE_DIR, GO_MODE_SYMLINK

    rebase = ""
    if follow_link:
        info = cli.client.stat_container_path(container, path)
        if info.get("mode", 0) & GO_MODE_SYMLINK and info.get("linkTarget"):
            rebase = split_dir_entry(path)[1]
            path = info["linkTarget"]
    info, response = cli.client.get_archive(container, path)
    with response:
        if dst == "-":
            sink = cli.out_binary
            total = 0
            for chunk in response.iter_chunks():
                sink.write(chunk)
                total += len(chunk)
            sink.flush()
            return total
        real_dst = os.path.realpath(dst) if os.path.islink(dst.rstrip("/")) else dst
        exists = os.path.exists(real_dst)
        plan = plan_copy(
            path, bool(info.get("mode", 0) & GO_MODE_DIR), real_dst, exists, os.path.isdir(real_dst), rebase
        )
        counting = _Counting(response)
        extract_local(counting, plan)
        return counting.count


def extract_local(stream: Any, plan: CopyPlan) -> None:
    """Unpack with the confined layer apply; a renamed top entry is unpacked beside its target first."""
    import shutil
    import tempfile

    from dockyard.image.layer import apply_tar

    if not os.path.isdir(plan.directory):
        raise CopyError(f"no such directory: {plan.directory}")
    if plan.rename_from is None:
        apply_tar(stream, plan.directory, whiteouts="delete")
        return
    staging = tempfile.mkdtemp(prefix=".dockyard-cp-", dir=plan.directory)
    try:
        apply_tar(stream, staging, whiteouts="delete")
        source = staging if plan.rename_from == "." else os.path.join(staging, plan.rename_from)
        os.replace(source, os.path.join(plan.directory, plan.rename_to or plan.rename_from))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_to_container(cli: Cli, src: str, container: str, path: str, follow_link: bool, archive: bool) -> int:
    from dockyard.client.errors import APIError
    from dockyard.daemon.archive import GO_MODE_DIR, GO_MODE_SYMLINK

    dst_path, exists, is_dir = path, False, False
    try:
        info = cli.client.stat_container_path(container, path)
        if info.get("mode", 0) & GO_MODE_SYMLINK:
            target = info["linkTarget"]
            dst_path = target if target.startswith("/") else posixpath.join(split_dir_entry(path)[0], target)
            info = cli.client.stat_container_path(container, dst_path)
        exists, is_dir = True, bool(info.get("mode", 0) & GO_MODE_DIR)
    except APIError as exc:
        if not exc.is_not_found:
            raise
        cli.client.inspect_container(container)  # a missing container is an error, a missing path is not
    if src == "-":
        if not is_dir:
            raise CopyError(f'destination "{container}:{path}" must be a directory')
        counting = _Counting(sys.stdin.buffer)
        cli.client.put_archive(container, dst_path, counting, copy_uid_gid=archive)
        return counting.count
    local = os.path.realpath(src) if follow_link else src
    if not os.path.lexists(local):
        raise CopyError(f"lstat {os.path.abspath(src)}: no such file or directory")
    rebase = split_dir_entry(src)[1] if follow_link and os.path.islink(src.rstrip("/")) else ""
    plan = plan_copy(src, os.path.isdir(local), dst_path, exists, is_dir, rebase)
    data = local_tar(local, split_dir_entry(src)[1] if plan.rename_from is None else (plan.rename_to or "."))
    cli.client.put_archive(container, plan.directory, data, copy_uid_gid=archive)
    return len(data)


def local_tar(path: str, arcname: str) -> bytes:
    """The local source as a tar whose top entry is `arcname` ("." puts a directory's content at the top)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path.rstrip("/") if path not in ("/", ".") else path, arcname=arcname, recursive=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------- commit / port
def cmd_commit(cli: Cli, argv: list[str], name: str = "commit") -> int:
    fs = (
        FlagSet(
            name,
            "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
            "Create a new image from a container's changes",
            min_args=1,
            max_args=2,
        )
        .add("-a, --author", "str", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
        .add("-c, --change", "list", help="Apply Dockerfile instruction to the created image")
        .add("-m, --message", "str", help="Commit message")
        .add("-p, --pause", "bool", default=True, help="Pause container during commit")
    )
    opts, args = fs.parse(argv)
    repo, tag = "", ""
    if len(args) == 2:
        from dockyard.cli.images import split_tag

        repo, tag = split_tag(args[1])
    result = cli.client.commit(
        args[0],
        repository=repo or None,
        tag=tag or None,
        comment=opts.message or None,
        author=opts.author or None,
        changes=opts.change,
        pause=opts.pause,
    )
    cli.print(result["Id"])
    return 0


def cmd_port(cli: Cli, argv: list[str], name: str = "port") -> int:
    fs = FlagSet(
        name,
        "CONTAINER [PRIVATE_PORT[/PROTO]]",
        "List port mappings or a specific mapping for the container",
        min_args=1,
        max_args=2,
    )
    _, args = fs.parse(argv)
    info = cli.client.inspect_container(args[0])
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if len(args) == 2:
        port, _, proto = args[1].partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = ports.get(key)
        if not bindings:
            raise StatusError(1, f"Error: No public port '{key}' published for {args[0]}")
        for binding in bindings:
            cli.print(_host_port(binding))
        return 0
    for key in sorted(ports):
        for binding in ports[key] or []:
            cli.print(f"{key} -> {_host_port(binding)}")
    return 0


def _host_port(binding: dict[str, str]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    return f"[{ip}]:{binding.get('HostPort', '')}" if ":" in ip else f"{ip}:{binding.get('HostPort', '')}"


# ---------------------------------------------------------------------------------------------- update
def parse_restart_policy(value: str) -> dict[str, Any]:
    name, _, count = value.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise StatusError(1, f"invalid restart policy '{name}'")
    if count and name != "on-failure":
        raise StatusError(1, f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        return {"Name": name, "MaximumRetryCount": int(count or 0)}
    except ValueError:
        raise StatusError(
            1, f"invalid restart policy format: maximum retry count must be an integer: {count}"
        ) from None


def _size_or_minus_one(value: str) -> int:
    from dockyard.cli.units import ram_in_bytes

    return -1 if value.strip() == "-1" else ram_in_bytes(value)


def update_body(opts: Any) -> dict[str, Any]:
    """The ContainerUpdate body from the flags that were given (docker sends zero for the others)."""
    from dockyard.cli.units import ram_in_bytes

    converters: dict[str, tuple[str, Any]] = {
        "memory": ("Memory", ram_in_bytes),
        "memory_swap": ("MemorySwap", _size_or_minus_one),
        "memory_reservation": ("MemoryReservation", ram_in_bytes),
        "cpu_shares": ("CpuShares", int),
        "cpu_period": ("CpuPeriod", int),
        "cpu_quota": ("CpuQuota", int),
        "cpuset_cpus": ("CpusetCpus", str),
        "cpuset_mems": ("CpusetMems", str),
        "pids_limit": ("PidsLimit", int),
        "blkio_weight": ("BlkioWeight", int),
        "cpus": ("NanoCpus", lambda v: round(float(v) * 1e9)),
        "restart": ("RestartPolicy", parse_restart_policy),
    }
    body: dict[str, Any] = {}
    for dest, (key, convert) in converters.items():
        if dest in opts.changed:
            try:
                body[key] = convert(str(getattr(opts, dest)))
            except ValueError as exc:
                raise StatusError(
                    1, f"invalid argument {getattr(opts, dest)!r} for --{dest.replace('_', '-')}: {exc}"
                ) from None
    return body


def cmd_update(cli: Cli, argv: list[str], name: str = "update") -> int:
    fs = (
        FlagSet(
            name, "[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers", min_args=1
        )
        .add("--blkio-weight", "str", help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
        .add("--cpu-period", "str", help="Limit CPU CFS (Completely Fair Scheduler) period")
        .add("--cpu-quota", "str", help="Limit CPU CFS (Completely Fair Scheduler) quota")
        .add("-c, --cpu-shares", "str", help="CPU shares (relative weight)")
        .add("--cpus", "str", help="Number of CPUs")
        .add("--cpuset-cpus", "str", help="CPUs in which to allow execution (0-3, 0,1)")
        .add("--cpuset-mems", "str", help="MEMs in which to allow execution (0-3, 0,1)")
        .add("-m, --memory", "str", help="Memory limit")
        .add("--memory-reservation", "str", help="Memory soft limit")
        .add("--memory-swap", "str", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
        .add("--pids-limit", "str", help="Tune container pids limit (set -1 for unlimited)")
        .add("--restart", "str", help="Restart policy to apply when a container exits")
    )
    opts, args = fs.parse(argv)
    body = update_body(opts)
    if not body:
        raise StatusError(1, "you must provide one or more flags when using this command")

    def update(container: str) -> None:
        for warning in cli.client.update_container(container, body).get("Warnings") or []:
            cli.error(warning)

    return each(cli, args, update)


# ---------------------------------------------------------------------------------------------- prune
def confirm(cli: Cli, warning: str) -> bool:
    cli.out.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    cli.out.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _prune_flags(name: str, what: str, all_help: str | None = None) -> FlagSet:
    fs = (
        FlagSet(name, "[OPTIONS]", what, max_args=0)
        .add("-f, --force", help="Do not prompt for confirmation")
        .add("--filter", "list", help='Provide filter values (e.g. "until=<timestamp>")')
    )
    return fs.add("-a, --all", help=all_help) if all_help else fs


def prune_containers(cli: Cli, filters: dict[str, list[str]]) -> tuple[list[str], int]:
    report = cli.client.prune_containers(filters)
    deleted = report.get("ContainersDeleted") or []
    lines = ["Deleted Containers:", *deleted, ""] if deleted else []
    return lines, int(report.get("SpaceReclaimed") or 0)


def prune_images(cli: Cli, filters: dict[str, list[str]], all_: bool) -> tuple[list[str], int]:
    filters = {**filters, "dangling": ["false" if all_ else "true"]}
    report = cli.client.prune_images(filters)
    items = report.get("ImagesDeleted") or []
    lines = [f"untagged: {i['Untagged']}" if "Untagged" in i else f"deleted: {i['Deleted']}" for i in items]
    return (["Deleted Images:", *lines, ""] if lines else []), int(report.get("SpaceReclaimed") or 0)


def _print_report(cli: Cli, lines: list[str], reclaimed: int) -> None:
    from dockyard.cli.units import human_size

    for line in lines:
        cli.print(line)
    cli.print(f"Total reclaimed space: {human_size(reclaimed)}")


def cmd_container_prune(cli: Cli, argv: list[str], name: str = "container prune") -> int:
    opts, _ = _prune_flags(name, "Remove all stopped containers").parse(argv)
    if not opts.force and not confirm(cli, "WARNING! This will remove all stopped containers."):
        return 0
    _print_report(cli, *prune_containers(cli, parse_filters(opts.filter)))
    return 0


def cmd_image_prune(cli: Cli, argv: list[str], name: str = "image prune") -> int:
    opts, _ = _prune_flags(name, "Remove unused images", "Remove all unused images, not just dangling ones").parse(argv)
    warning = (
        "WARNING! This will remove all images without at least one container associated to them."
        if opts.all
        else "WARNING! This will remove all dangling images."
    )
    if not opts.force and not confirm(cli, warning):
        return 0
    _print_report(cli, *prune_images(cli, parse_filters(opts.filter), opts.all))
    return 0


def cmd_system_prune(cli: Cli, argv: list[str], name: str = "system prune") -> int:
    opts, _ = (
        _prune_flags(name, "Remove unused data", "Remove all unused images not just dangling ones").add(
            "--volumes", help="Prune anonymous volumes"
        )
    ).parse(argv)
    items = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items += (
        ["all images without at least one container associated to them", "all build cache"]
        if opts.all
        else ["all dangling images", "unused build cache"]
    )
    warning = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
    if not opts.force and not confirm(cli, warning):
        return 0
    filters = parse_filters(opts.filter)
    container_lines, container_space = prune_containers(cli, filters)
    image_lines, image_space = prune_images(cli, filters, opts.all)
    _print_report(cli, container_lines + image_lines, container_space + image_space)
    return 0


# ------------------------------------------------------------------------------------------ system df
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


class DiskUsageRow(FieldProvider):
    fields = ("Type", "TotalCount", "Active", "Size", "Reclaimable")
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}

    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: int) -> None:
        self.values = (kind, total, active, size, reclaimable)

    def Type(self) -> str:
        return self.values[0]

    def TotalCount(self) -> str:
        return str(self.values[1])

    def Active(self) -> str:
        return str(self.values[2])

    def Size(self) -> str:
        from dockyard.cli.units import human_size

        return human_size(self.values[3])

    def Reclaimable(self) -> str:
        from dockyard.cli.units import human_size

        size, reclaimable = self.values[3], self.values[4]
        text = human_size(reclaimable)
        return f"{text} ({reclaimable * 100 // size}%)" if size > 0 and self.values[0] != "Local Volumes" else text


def _container_active(c: dict[str, Any]) -> bool:
    return c.get("State") in ("running", "paused", "restarting")


def disk_usage_rows(df: dict[str, Any]) -> list[DiskUsageRow]:
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    layers = int(df.get("LayersSize") or 0)
    used = sum(i["Size"] - i["SharedSize"] for i in images if i.get("Containers") and i.get("SharedSize", -1) >= 0)
    rw = [int(c.get("SizeRw") or 0) for c in containers]
    idle_rw = sum(int(c.get("SizeRw") or 0) for c in containers if not _container_active(c))
    return [
        DiskUsageRow("Images", len(images), sum(1 for i in images if i.get("Containers")), layers, layers - used),
        DiskUsageRow(
            "Containers", len(containers), sum(1 for c in containers if _container_active(c)), sum(rw), idle_rw
        ),
        DiskUsageRow("Local Volumes", len(df.get("Volumes") or []), 0, 0, 0),
        DiskUsageRow("Build Cache", len(df.get("BuildCache") or []), 0, 0, 0),
    ]


def cmd_system_df(cli: Cli, argv: list[str], name: str = "system df") -> int:
    from dockyard.cli.formatting import render

    fs = (
        FlagSet(name, "[OPTIONS]", "Show docker disk usage", max_args=0)
        .add("-v, --verbose", help="Show detailed information on space usage")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, _ = fs.parse(argv)
    df = cli.client.df()
    if opts.verbose and not opts.format:
        _print_verbose_df(cli, df)
        return 0
    cli.out.write(render(opts.format or "table", disk_usage_rows(df), DiskUsageRow.headers, DF_TABLE))
    return 0


def _print_verbose_df(cli: Cli, df: dict[str, Any]) -> None:
    from dockyard.cli.formatting import ContainerRow, expand_image_rows, render, tabwrite
    from dockyard.cli.units import human_size

    now = time.time()
    cli.print("Images space usage:\n")
    image_table = (
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
        "\t{{.UniqueSize}}\t{{.Containers}}"
    )
    from dockyard.cli.formatting import ImageRow

    cli.out.write(render(image_table, expand_image_rows(df.get("Images") or [], now=now), ImageRow.headers))
    cli.print("\nContainers space usage:\n")
    container_table = (
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}"
        "\t{{.Status}}\t{{.Names}}"
    )
    rows = [ContainerRow(c, now=now) for c in df.get("Containers") or []]
    cli.out.write(render(container_table, rows, ContainerRow.headers))
    cli.print("\nLocal Volumes space usage:\n")
    cli.out.write(tabwrite("VOLUME NAME\tLINKS\tSIZE\n"))
    cli.print(f"\nBuild cache usage: {human_size(0)}\n")
    cli.out.write(tabwrite("CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n"))

"""`run` and `create`: docker's container flags, the create body, and the run flow with exit codes."""

from __future__ import annotations

import contextlib
import os
import sys

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, Options, StatusError
from dockyard.cli.units import ram_in_bytes

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RUN_USAGE = "[OPTIONS] IMAGE [COMMAND] [ARG...]"


def add_container_flags(fs: FlagSet) -> FlagSet:
    """The flags shared by run and create (docker's containerOptions)."""
    return (
        fs.add("-a, --attach", "list", help="Attach to STDIN, STDOUT or STDERR")
        .add("-e, --env", "list", help="Set environment variables")
        .add("--env-file", "list", help="Read in a file of environment variables")
        .add("-i, --interactive", help="Keep STDIN open even if not attached")
        .add("-t, --tty", help="Allocate a pseudo-TTY")
        .add("-w, --workdir", "str", help="Working directory inside the container")
        .add("-u, --user", "str", help="Username or UID (format: <name|uid>[:<group|gid>])")
        .add("--entrypoint", "str", help="Overwrite the default ENTRYPOINT of the image")
        .add("--name", "str", help="Assign a name to the container")
        .add("-h, --hostname", "str", help="Container host name")
        .add("--domainname", "str", help="Container NIS domain name")
        .add("--runtime", "str", help="Runtime to use for this container")
        .add("-m, --memory", "str", help="Memory limit")
        .add("--memory-swap", "str", help="Swap limit equal to memory plus swap: '-1' to enable unlimited")
        .add("--cpus", "str", help="Number of CPUs")
        .add("-c, --cpu-shares", "int", help="CPU shares (relative weight)")
        .add("--pids-limit", "int", help="Tune container pids limit (set -1 for unlimited)")
        .add("--read-only", help="Mount the container's root filesystem as read only")
        .add("-l, --label", "list", help="Set meta data on a container")
        .add("--stop-signal", "str", help="Signal to stop the container")
        .add("--stop-timeout", "int", help="Timeout (in seconds) to stop a container")
        .add("--health-cmd", "str", help="Command to run to check health")
        .add("--health-interval", "duration", help="Time between running the check (ms|s|m|h) (default 0s)")
        .add("--health-timeout", "duration", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
        .add("--health-start-period", "duration", help="Start period for the container to initialize (default 0s)")
        .add("--health-start-interval", "duration", help="Time between checks during the start period (default 0s)")
        .add("--health-retries", "int", help="Consecutive failures needed to report unhealthy")
        .add("--no-healthcheck", help="Disable any container-specified HEALTHCHECK")
        .add("--privileged", help="Give extended privileges to this container")
        .add("--cap-add", "list", help="Add Linux capabilities")
        .add("--cap-drop", "list", help="Drop Linux capabilities")
        .add("--ulimit", "list", help="Ulimit options")
        .add("--shm-size", "str", help="Size of /dev/shm")
        .add("--security-opt", "list", help="Security Options")
        .add("--init", help="Run an init inside the container that forwards signals and reaps processes")
        .add("--pid", "str", help="PID namespace to use")
        .add("--ipc", "str", help="IPC mode to use")
        .add("--uts", "str", help="UTS namespace to use")
        .add("--group-add", "list", help="Add additional groups to join")
        .add("--device", "list", help="Add a host device to the container")
        .add("--sysctl", "list", help="Sysctl options")
        .add("--log-driver", "str", help="Logging driver for the container")
        .add("--log-opt", "list", help="Log driver options")
        .add("-v, --volume", "list", help="Bind mount a volume")
        .add("--mount", "list", help="Attach a filesystem mount to the container")
        .add("--tmpfs", "list", help="Mount a tmpfs directory")
        .add("--volumes-from", "list", help="Mount volumes from the specified container(s)")
        .add("-p, --publish", "list", help="Publish a container's port(s) to the host")
        .add("--network", "str", help="Connect a container to a network", dest="network")
        .add("--net", "str", help="Connect a container to a network", dest="network")
        .add("--network-alias", "list", help="Add network-scoped alias for the container")
        .add("--ip", "str", help="IPv4 address (e.g., 172.30.100.104)")
        .add("-P, --publish-all", help="Publish all exposed ports to random ports")
        .add("--expose", "list", help="Expose a port or a range of ports")
        .add("--dns", "list", help="Set custom DNS servers")
        .add("--dns-search", "list", help="Set custom DNS search domains")
        .add("--dns-option", "list", help="Set DNS options")
        .add("--add-host", "list", help="Add a custom host-to-IP mapping (host:ip)")
        .add("--restart", "str", help="Restart policy to apply when a container exits")
        .add("--platform", "str", help="Set platform if server is multi-platform capable")
        .add("--cidfile", "str", help="Write the container ID to the file")
        .add("--pull", "str", default="missing", help='Pull image before running ("always", "missing", "never")')
        .add("-q, --quiet", help="Suppress the pull output")
    )


def _flagset(command: str, description: str) -> FlagSet:
    fs = FlagSet(command, RUN_USAGE, description, interspersed=False, min_args=1)
    return add_container_flags(fs)


def run_flagset(command: str = "run") -> FlagSet:
    fs = _flagset(command, "Create and run a new container from an image")
    return (
        fs.add("-d, --detach", help="Run container in background and print container ID")
        .add("--rm", help="Automatically remove the container and its associated anonymous volumes when it exits")
        .add("--sig-proxy", default=True, help="Proxy received signals to the process")
        .add("--detach-keys", "str", help="Override the key sequence for detaching a container")
    )


def _security_opt(value: str) -> str:
    """As docker's CLI: `seccomp=<file>` sends the profile's content; other options go as given."""
    key, sep, arg = value.partition("=") if "=" in value else value.partition(":")
    if key == "seccomp" and sep and arg not in ("unconfined", "builtin"):
        try:
            with open(arg) as f:
                return f"seccomp={f.read()}"
        except OSError as exc:
            raise ValueError(f"opening seccomp profile ({arg}) failed: {exc}") from None
    return value


def create_flagset(command: str = "create") -> FlagSet:
    return _flagset(command, "Create a new container").add(
        "--rm", help="Automatically remove the container when it exits"
    )


# ------------------------------------------------------------------------------------------ body
def parse_env_file(path: str) -> list[str]:
    """docker's env-file: KEY=VALUE lines, `#` comments, bare KEY taken from our environment."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise StatusError(125, f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from exc
    env: list[str] = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _value = line.partition("=")
        if " " in key.strip() or "\t" in key:
            raise StatusError(125, f"variable '{key}' contains whitespaces")
        if eq:
            env.append(line)
        elif key in os.environ:
            env.append(f"{key}={os.environ[key]}")
    return env


def _env(opts: Options) -> list[str]:
    env: list[str] = []
    for path in opts.env_file:
        env += parse_env_file(path)
    for item in opts.env:
        if "=" in item:
            env.append(item)
        elif item in os.environ:
            env.append(f"{item}={os.environ[item]}")
    return env


def _labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def parse_ulimit(value: str) -> dict[str, Any]:
    """`nofile=1024:2048` -> {"Name": "nofile", "Soft": 1024, "Hard": 2048}."""
    name, eq, limits = value.partition("=")
    if not eq or not name:
        raise ValueError(f"invalid ulimit argument: {value}")
    soft, _, hard = limits.partition(":")
    try:
        soft_value = int(soft)
        hard_value = int(hard) if hard else soft_value
    except ValueError as exc:
        raise ValueError(f"invalid ulimit argument: {value}") from exc
    if soft_value > hard_value:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft_value} > {hard_value}")
    return {"Name": name, "Soft": soft_value, "Hard": hard_value}


def parse_cpus(value: str) -> int:
    """--cpus 1.5 -> NanoCpus 1500000000 (at most nanosecond precision, as docker's NanoCPUs)."""
    try:
        cpus = float(value)
    except ValueError as exc:
        raise ValueError(
            f'invalid argument "{value}" for "--cpus" flag: failed to parse {value} as a rational number'
        ) from exc
    nano = cpus * 1e9
    if nano != int(nano) or cpus < 0:
        raise ValueError(f'invalid argument "{value}" for "--cpus" flag: value is too precise')
    return int(nano)


def _port_range(text: str, what: str) -> list[int]:
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()) or int(high or low) < int(low):
        raise ValueError(f"invalid {what}: {text}")
    return list(range(int(low), int(high or low) + 1))


def _ports(specs: list[str]) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    """-p [ip:][hostPort:]containerPort[/proto] -> ExposedPorts and PortBindings (ranges expanded
    pairwise as docker's nat.ParsePortSpec; a host range for one container port stays a range)."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        spec, _, proto = spec.partition("/")
        parts = spec.rsplit(":", 2)
        host_ip, host_port, container_port = [""] * (3 - len(parts)) + parts
        container_ports = _port_range(container_port, "containerPort")
        host_ports = _port_range(host_port, "hostPort") if host_port else []
        if host_ports and len(container_ports) > 1 and len(host_ports) != len(container_ports):
            raise ValueError(f"invalid ranges specified for container and host Ports: {container_port} and {host_port}")
        for i, port in enumerate(container_ports):
            key = f"{port}/{proto or 'tcp'}"
            exposed[key] = {}
            host = host_port if len(container_ports) == 1 else (str(host_ports[i]) if host_ports else "")
            bindings.setdefault(key, []).append({"HostIp": host_ip.strip("[]"), "HostPort": host})
    return exposed, bindings


def _exposed(specs: list[str]) -> dict[str, dict]:
    """--expose port[-port][/proto]."""
    out: dict[str, dict] = {}
    for spec in specs:
        ports, _, proto = spec.partition("/")
        out.update({f"{p}/{proto or 'tcp'}": {} for p in _port_range(ports, "port")})
    return out


_MOUNT_BOOLS = {"readonly", "ro", "volume-nocopy", "bind-nonrecursive"}


def parse_mount(value: str) -> dict[str, Any]:
    """`--mount type=bind,src=/x,dst=/y,readonly` -> a HostConfig.Mounts entry (docker's opts.MountOpt)."""
    import csv

    def fail(message: str) -> ValueError:
        return ValueError(f'invalid argument "{value}" for "--mount" flag: {message}')

    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in next(csv.reader([value])):
        key, eq, val = field.partition("=")
        key = key.strip().lower()
        if not eq and key not in _MOUNT_BOOLS:
            raise fail(f"invalid field '{field}' must be a key=value pair")
        if key in _MOUNT_BOOLS:
            if val.lower() not in ("", "1", "true", "0", "false"):
                raise fail(f"invalid value for {key}: {val}")
            flag = val.lower() in ("", "1", "true")
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = flag
            elif key == "volume-nocopy":
                volume["NoCopy"] = flag
            else:
                bind["NonRecursive"] = flag
        elif key == "type":
            mount["Type"] = val
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key == "consistency":
            mount["Consistency"] = val
        elif key == "bind-propagation":
            bind["Propagation"] = val
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-label":
            label, _, item = val.partition("=")
            volume.setdefault("Labels", {})[label] = item
        elif key == "volume-opt":
            option, _, item = val.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[option] = item
        elif key == "volume-subpath":
            volume["Subpath"] = val
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_in_bytes(val)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(val, 8)
            except ValueError:
                raise fail(f"invalid value for {key}: {val}") from None
        else:
            raise fail(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Target"):
        raise fail("target is required")
    for kind, options, key in (("bind", bind, "BindOptions"), ("volume", volume, "VolumeOptions"),
                               ("tmpfs", tmpfs, "TmpfsOptions")):  # fmt: skip
        if options and mount["Type"] != kind:
            raise fail(f"cannot mix '{kind}-*' options with mount type '{mount['Type']}'")
        if options:
            mount[key] = options
    return mount


def parse_device(value: str) -> dict[str, str]:
    """docker's `--device SRC[:DST][:PERMS]` (PERMS of r, w, m; DST defaults to SRC)."""
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise ValueError(f"invalid device specification: {value}")
    source, target, perms = parts[0], parts[0], "rwm"
    if len(parts) == 3:
        target, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if _device_perms(parts[1]):
            perms = parts[1]
        else:
            target = parts[1]
    if not _device_perms(perms):
        raise ValueError(f"invalid device specification: {value}")
    if not target.startswith("/"):
        raise ValueError(f"bad format for path: {target}")
    return {"PathOnHost": source, "PathInContainer": target, "CgroupPermissions": perms}


def _device_perms(text: str) -> bool:
    return bool(text) and set(text) <= set("rwm") and len(set(text)) == len(text)


def _key_value(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"invalid argument {text!r} for --{what}: must be of the form key=value")
    return key, value


def _tmpfs(specs: list[str]) -> dict[str, str]:
    """`--tmpfs /run:size=64m,mode=1777` -> HostConfig.Tmpfs {"/run": "size=64m,mode=1777"}."""
    out: dict[str, str] = {}
    for spec in specs:
        dest, _, options = spec.partition(":")
        out[dest] = options
    return out


def _restart_policy(value: str) -> dict[str, Any]:
    name, _, count = value.partition(":")
    return {"Name": name or "no", "MaximumRetryCount": int(count) if count else 0}


def build_create_body(
    opts: Options, image: str, command: list[str], detach: bool = False, tty_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Translate parsed flags into the POST /containers/create body (docker's parse())."""
    try:
        return _build_create_body(opts, image, command, detach, tty_size)
    except ValueError as exc:
        raise StatusError(125, f"dockyard: {exc}.\nSee 'dockyard run --help'.") from exc


def _build_create_body(
    opts: Options, image: str, command: list[str], detach: bool, tty_size: tuple[int, int] | None
) -> dict[str, Any]:
    attach = {stream.lower() for stream in opts.attach}
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise ValueError(f"valid streams are STDIN, STDOUT and STDERR, not {stream!r}")
    attach_stdin = "stdin" in attach or opts.interactive
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    if detach:
        attach_stdin = attach_stdout = attach_stderr = False
    entrypoint: list[str] | None = None
    if opts.entrypoint:
        entrypoint = [opts.entrypoint]
    elif "entrypoint" in opts.changed:
        entrypoint = [""]
    host_config: dict[str, Any] = {
        "AutoRemove": opts.rm,
        "Privileged": opts.privileged,
        "ReadonlyRootfs": opts.read_only,
        "CapAdd": opts.cap_add or None,
        "CapDrop": opts.cap_drop or None,
        "Ulimits": [parse_ulimit(u) for u in opts.ulimit] or None,
        "Binds": opts.volume or None,
        "Mounts": [parse_mount(m) for m in opts.mount] or None,
        "Tmpfs": _tmpfs(opts.tmpfs) or None,
        "VolumesFrom": opts.volumes_from or None,
        "NetworkMode": opts.network or "default",
        "RestartPolicy": _restart_policy(opts.restart) if opts.restart else {"Name": "no", "MaximumRetryCount": 0},
        "Memory": ram_in_bytes(opts.memory) if opts.memory else 0,
        "NanoCpus": parse_cpus(opts.cpus) if opts.cpus else 0,
        "CpuShares": opts.cpu_shares,
    }
    if opts.memory_swap:
        host_config["MemorySwap"] = -1 if opts.memory_swap == "-1" else ram_in_bytes(opts.memory_swap)
    if "pids_limit" in opts.changed:
        host_config["PidsLimit"] = opts.pids_limit
    if opts.shm_size:
        host_config["ShmSize"] = ram_in_bytes(opts.shm_size)
    if opts.security_opt:
        host_config["SecurityOpt"] = [_security_opt(o) for o in opts.security_opt]
    if opts.runtime:
        host_config["Runtime"] = opts.runtime
    if opts.init:
        host_config["Init"] = True
    host_config.update(PidMode=opts.pid, IpcMode=opts.ipc, UTSMode=opts.uts, GroupAdd=opts.group_add or None)
    if opts.device:
        host_config["Devices"] = [parse_device(d) for d in opts.device]
    if opts.sysctl:
        host_config["Sysctls"] = dict(_key_value(s, "sysctl") for s in opts.sysctl)
    if opts.log_driver or opts.log_opt:
        host_config["LogConfig"] = {
            "Type": opts.log_driver,
            "Config": dict(_key_value(o, "log-opt") for o in opts.log_opt),
        }
    if opts.tty and tty_size:
        host_config["ConsoleSize"] = list(tty_size)
    exposed, bindings = _ports(opts.publish)
    exposed = {**_exposed(opts.expose), **exposed}
    host_config.update(
        PublishAllPorts=opts.publish_all,
        Dns=opts.dns,
        DnsSearch=opts.dns_search,
        DnsOptions=opts.dns_option,
        ExtraHosts=opts.add_host or None,
    )
    if bindings:
        host_config["PortBindings"] = bindings
    config: dict[str, Any] = {
        "Hostname": opts.hostname,
        "Domainname": opts.domainname,
        "User": opts.user,
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": bool(opts.interactive and attach_stdin and not detach),
        "Env": _env(opts),
        "Cmd": command or None,
        "Image": image,
        "Volumes": None,
        "WorkingDir": opts.workdir,
        "Entrypoint": entrypoint,
        "Labels": _labels(opts.label),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    if "stop_timeout" in opts.changed:
        config["StopTimeout"] = opts.stop_timeout
    healthcheck = _healthcheck(opts)
    if healthcheck is not None:
        config["Healthcheck"] = healthcheck
    config["HostConfig"] = host_config
    network = opts.network or "default"
    endpoint: dict[str, Any] = {}
    if opts.network_alias:
        endpoint["Aliases"] = opts.network_alias
    if opts.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": opts.ip}
    if endpoint and network == "default":
        what = "--ip" if opts.ip else "--network-alias"
        raise ValueError(f"{what} requires a user-defined network: use --network")
    config["NetworkingConfig"] = {"EndpointsConfig": {} if network == "default" else {network: endpoint}}
    return config


def _healthcheck(opts: Options) -> dict[str, Any] | None:
    """docker's --health-* / --no-healthcheck: a HealthConfig, or None to keep the image's."""
    durations = ("health_interval", "health_timeout", "health_start_period", "health_start_interval")
    configured = bool(opts.health_cmd) or any(opts.values[name] for name in (*durations, "health_retries"))
    if opts.no_healthcheck:
        if configured:
            raise ValueError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not configured:
        return None
    for name in (*durations, "health_retries"):
        if opts.values[name] < 0:
            raise ValueError(f"--{name.replace('_', '-')} cannot be negative")
    return {
        "Test": ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None,
        "Interval": opts.health_interval,
        "Timeout": opts.health_timeout,
        "StartPeriod": opts.health_start_period,
        "StartInterval": opts.health_start_interval,
        "Retries": opts.health_retries,
    }


# ------------------------------------------------------------------------------------------ flows
def exit_code_for_start_error(message: str) -> int:
    """docker/cli runStartContainerErr: 127 not found, 126 not executable, else 125."""
    text = message.removeprefix("Error response from daemon: ")
    if (
        "executable file not found" in text
        or "no such file or directory" in text
        or "system cannot find the file specified" in text
    ):
        return 127
    if "permission denied" in text or "is a directory" in text or "not executable" in text:
        return 126
    return 125


def familiar_tagged(image: str) -> str:
    """`busybox` -> `busybox:latest` (reference.TagNameOnly + FamiliarString)."""
    from dockyard.cli.formatting import split_repo_tag

    if "@" in image:
        return image
    repo, tag = split_repo_tag(image)
    return f"{repo}:{tag or 'latest'}"


def run_error(message: str, with_help: bool = True, command: str = "run") -> str:
    """docker's reportError: `docker: <msg>.` plus the help hint."""
    text = "dockyard: " + message.rstrip(".") + "."
    return text + (f"\nSee 'dockyard {command} --help'." if with_help else "")


def pull_image(cli: Cli, image: str, quiet: bool = False, out: Any = None) -> None:
    """Pull via /images/create; progress on stderr by default (run/create keep stdout for the id)."""
    out = out or cli.err
    from dockyard.cli.formatting import split_repo_tag
    from dockyard.cli.progress import display_messages
    from dockyard.cli.registry_client import auth_for

    repo, tag = split_repo_tag(image) if "@" not in image else (image, "")
    # As docker's CLI: the stored credentials of the image's registry go along (X-Registry-Auth).
    response = cli.client.pull_image(repo, tag or ("latest" if "@" not in image else None), auth=auth_for(image))
    messages = response.iter_json()
    if quiet:
        for message in messages:
            if message.get("errorDetail") or message.get("error"):
                display_messages([message], out)
        return
    display_messages(messages, out, tty=out.isatty())


def create_container(
    cli: Cli,
    body: dict[str, Any],
    name: str | None,
    pull: str = "missing",
    quiet: bool = False,
    platform: str | None = None,
    command: str = "run",
) -> str:
    """POST /containers/create, pulling once on "No such image" as docker does; returns the id."""
    from dockyard.client.errors import APIError, ClientError

    image = body["Image"]
    try:
        if pull == "always":
            pull_image(cli, image, quiet)
        try:
            response = cli.client.create_container(body, name=name, platform=platform)
        except APIError as exc:
            if not exc.is_not_found or pull != "missing":
                raise
            if not quiet:
                cli.error(f"Unable to find image '{familiar_tagged(image)}' locally")
            pull_image(cli, image, quiet)
            response = cli.client.create_container(body, name=name, platform=platform)
    except ClientError as exc:
        from dockyard.client.errors import DaemonUnavailable

        if isinstance(exc, DaemonUnavailable):
            raise
        raise StatusError(125, run_error(str(exc), command=command)) from exc
    for warning in response.get("Warnings") or []:
        cli.error(f"WARNING: {warning}")
    return response["Id"]


def _write_cidfile(path: str, container_id: str) -> None:
    if os.path.exists(path):
        raise StatusError(
            125, run_error(f"container ID file found, make sure the other container isn't running or delete {path}")
        )
    with open(path, "w", encoding="utf-8") as f:
        f.write(container_id)


def cmd_create(cli: Cli, argv: list[str], name: str = "create") -> int:
    opts, args = create_flagset(name).parse(argv)
    body = build_create_body(opts, args[0], args[1:], tty_size=_tty_size(opts))
    if opts.cidfile and os.path.exists(opts.cidfile):
        _write_cidfile(opts.cidfile, "")
    container_id = create_container(
        cli, body, opts.name or None, opts.pull, opts.quiet, opts.platform or None, command=name
    )
    if opts.cidfile:
        _write_cidfile(opts.cidfile, container_id)
    cli.print(container_id)
    return 0


def _tty_size(opts: Options) -> tuple[int, int] | None:
    if not opts.tty:
        return None
    from dockyard.cli.streaming import terminal_size

    return terminal_size(1)


def cmd_run(cli: Cli, argv: list[str], name: str = "run") -> int:
    opts, args = run_flagset(name).parse(argv)
    if opts.detach and opts.attach:
        raise StatusError(125, run_error("Conflicting options: -a and -d"))
    body = build_create_body(opts, args[0], args[1:], detach=opts.detach, tty_size=_tty_size(opts))
    if not opts.detach and body["AttachStdin"] and opts.tty and not sys.stdin.isatty():
        raise StatusError(1, "the input device is not a TTY")
    if opts.cidfile and os.path.exists(opts.cidfile):
        _write_cidfile(opts.cidfile, "")
    container_id = create_container(
        cli, body, opts.name or None, opts.pull, opts.quiet, opts.platform or None, command=name
    )
    if opts.cidfile:
        _write_cidfile(opts.cidfile, container_id)
    if opts.detach:
        _start_or_fail(cli, container_id, None)
        cli.print(container_id)
        return 0
    return attach_start_wait(cli, container_id, body, opts.rm, opts.sig_proxy, opts.detach_keys or None)


def _start_or_fail(cli: Cli, container_id: str, wait: Any) -> None:
    from dockyard.client.errors import APIError

    try:
        cli.client.start_container(container_id)
    except APIError as exc:
        if wait is not None:
            wait.close()
        raise StatusError(exit_code_for_start_error(str(exc)), run_error(str(exc), with_help=False)) from exc


def attach_start_wait(
    cli: Cli,
    container_id: str,
    config: dict[str, Any],
    auto_remove: bool,
    sig_proxy: bool = True,
    detach_keys: str | None = None,
) -> int:
    """attach (hijack) before start, open the wait, start, pump I/O, return the exit status."""
    import threading

    from dockyard.cli.streaming import (
        copy_output,
        detach_key_bytes,
        forward_stdin,
        monitor_resize,
        proxy_signals,
        raw_terminal,
    )

    client = cli.client
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("AttachStdin"))
    keys = detach_key_bytes(detach_keys) if tty and stdin else b""
    detached = threading.Event()
    conn = client.attach_container(
        container_id,
        stdin=stdin,
        stdout=bool(config.get("AttachStdout")),
        stderr=bool(config.get("AttachStderr")),
        detach_keys=detach_keys,
    )
    restores = []
    try:
        wait = client.open_wait(container_id, "removed" if auto_remove else "next-exit")
        _start_or_fail(cli, container_id, wait)
        if tty and cli.out.isatty():
            restores.append(monitor_resize(lambda h, w: client.resize_container(container_id, h, w)))
        if sig_proxy and not tty:
            restores.append(proxy_signals(lambda sig: client.kill_container(container_id, sig)))
        with raw_terminal(0) if (tty and stdin) else contextlib.nullcontext():
            if stdin:
                forward_stdin(conn, detach_keys=keys, detached=detached)
            cli.out.flush()
            copy_output(conn.iter_output(tty), cli.out_binary, cli.err_binary)
        if detached.is_set():  # ctrl-p ctrl-q: the container keeps running
            wait.close()
            return 0
        result = wait.json() or {}
    finally:
        for restore in restores:
            restore()
        conn.close()
    error = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
    if error:
        cli.error(error)
    return int(result.get("StatusCode", 0))

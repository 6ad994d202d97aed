"""One container: its record in docker's inspect shape, its in-memory synchronisation, its views.

The record is the single source of truth and is what `docker inspect` returns; it is persisted as
containers/<id>/config.v2.json after every state change.
"""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path
from typing import Any

from dockyard.daemon.health import merge as merge_healthcheck
from dockyard.errors import InvalidParameter
from dockyard.util.fs import write_json
from dockyard.util.humanize import human_duration
from dockyard.util.timefmt import ZERO_TIME, parse_rfc3339, rfc3339_nano

DEFAULT_STOP_TIMEOUT = 10

CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": {},
}

HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "none",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [0, 0],
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "private",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "",
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "PidsLimit": None,
    "Ulimits": None,
    "MaskedPaths": None,
    "ReadonlyPaths": None,
}


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any]) -> None:
    """Fill a new container's Config from its image, as docker's create does (merge in place)."""
    image_env = image_config.get("Env") or []
    own_env = config.get("Env") or []
    own_keys = {e.split("=", 1)[0] for e in own_env}
    config["Env"] = [e for e in image_env if e.split("=", 1)[0] not in own_keys] + list(own_env)
    if not config.get("Entrypoint") and config.get("Entrypoint") != []:
        config["Entrypoint"] = image_config.get("Entrypoint")
        if not config.get("Cmd"):
            config["Cmd"] = image_config.get("Cmd")
    elif config.get("Entrypoint") == [""] or config.get("Entrypoint") == []:
        config["Entrypoint"] = None
    for key in ("WorkingDir", "User", "StopSignal"):
        if not config.get(key) and image_config.get(key):
            config[key] = image_config[key]
    labels = dict(image_config.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    config["Labels"] = labels
    if image_config.get("ExposedPorts") or config.get("ExposedPorts"):
        config["ExposedPorts"] = {**(image_config.get("ExposedPorts") or {}), **(config.get("ExposedPorts") or {})}
    if image_config.get("Volumes") or config.get("Volumes"):
        config["Volumes"] = {**(image_config.get("Volumes") or {}), **(config.get("Volumes") or {})}
    healthcheck = merge_healthcheck(config.get("Healthcheck"), image_config.get("Healthcheck"))
    if healthcheck:
        config["Healthcheck"] = healthcheck


def command_of(config: dict[str, Any]) -> list[str]:
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not argv:
        raise InvalidParameter("no command specified")
    return argv


class Container:
    """A container's record plus the locks and condition its API calls synchronise on."""

    def __init__(self, record: dict[str, Any], root: Path) -> None:
        self.record = record
        self.dir = root / record["Id"]
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.exit_count = 0
        self.removed = False
        self.monitor: Any = None  # runtime.shim.MonitorHandle while running
        self.restart_delay = 0.0  # the restart policy's current back-off
        self.pending_attach: list[Any] = []

    # -- identity ---------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.record["Id"]

    @property
    def name(self) -> str:
        return self.record["Name"]

    @property
    def state(self) -> dict[str, Any]:
        return self.record["State"]

    @property
    def config(self) -> dict[str, Any]:
        return self.record["Config"]

    @property
    def host_config(self) -> dict[str, Any]:
        return self.record["HostConfig"]

    @property
    def running(self) -> bool:
        return bool(self.state["Running"])

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.dir / "bundle" / "rootfs"

    @property
    def log_path(self) -> Path:
        return self.dir / "container.log"

    def save(self, durable: bool = True) -> None:
        """Persist the record. Run-state transitions pass durable=False: after a crash the restore
        reconciles them with the monitors and exit files, so they need atomicity, not an fsync."""
        write_json(self.dir / "config.v2.json", self.record, 0o600, durable)

    # -- state transitions (caller holds the lock) ----------------------------------------
    def set_running(self, pid: int) -> None:
        self.state.update(
            Status="running",
            Running=True,
            Paused=False,
            Restarting=False,
            OOMKilled=False,
            Dead=False,
            Pid=pid,
            ExitCode=0,
            Error="",
            StartedAt=rfc3339_nano(),
        )
        self.save(durable=False)
        self.changed.notify_all()

    def set_exited(self, exit_code: int, finished_at: str | None = None, oom: bool = False, error: str = "") -> None:
        self.state.update(
            Status="exited",
            Running=False,
            Paused=False,
            Restarting=False,
            OOMKilled=oom,
            Pid=0,
            ExitCode=exit_code,
            Error=error,
            FinishedAt=finished_at or rfc3339_nano(),
        )
        self.monitor = None
        self.exit_count += 1
        self.save(durable=False)
        self.changed.notify_all()

    def set_start_failed(self, exit_code: int, error: str) -> None:
        """A failed start leaves the container "created" with the error, as docker does."""
        self.state.update(ExitCode=exit_code, Error=error, Running=False, Pid=0)
        self.monitor = None
        self.exit_count += 1
        self.save(durable=False)
        self.changed.notify_all()

    # -- views ------------------------------------------------------------------
    def port_list(self) -> list[dict[str, Any]]:
        return _ports_summary(self.record["NetworkSettings"].get("Ports") or {}) if self.running else []

    def status_text(self, now: float | None = None) -> str:
        """The STATUS column of `docker ps`."""
        now = time.time() if now is None else now
        st = self.state
        if st["Running"]:
            text = "Up " + human_duration(now - parse_rfc3339(st["StartedAt"]))
            if st.get("Paused"):
                return text + " (Paused)"
            health = (st.get("Health") or {}).get("Status")
            if health:
                return f"{text} ({'health: starting' if health == 'starting' else health})"
            return text
        if st["Status"] == "removing":
            return "Removal In Progress"
        if st.get("Restarting"):
            return f"Restarting ({st['ExitCode']}) {human_duration(now - parse_rfc3339(st['FinishedAt']))} ago"
        if st["Status"] == "dead":
            return "Dead"
        if st["Status"] == "created" or st["FinishedAt"] == ZERO_TIME:
            return "Created"
        return f"Exited ({st['ExitCode']}) {human_duration(now - parse_rfc3339(st['FinishedAt']))} ago"

    def summary(self, size: dict[str, int] | None = None) -> dict[str, Any]:
        """An item of GET /containers/json."""
        cmd = " ".join(
            shlex.quote(a) if (" " in a or not a) else a for a in [self.record["Path"], *self.record["Args"]]
        )
        item = {
            "Id": self.id,
            "Names": [self.name],
            "Image": self.config.get("Image", ""),
            "ImageID": self.record["Image"],
            "Command": cmd,
            "Created": int(parse_rfc3339(self.record["Created"])),
            "Ports": self.port_list(),
            "Labels": self.config.get("Labels") or {},
            "State": self.state["Status"],
            "Status": self.status_text(),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode", "none")},
            "NetworkSettings": {"Networks": self.record["NetworkSettings"].get("Networks") or {}},
            "Mounts": self.record.get("Mounts") or [],
        }
        if size is not None:
            item.update(size)
        return item


def _ports_summary(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """docker ps's Ports: one item per host binding, a bare one for an exposed unpublished port."""
    out: list[dict[str, Any]] = []
    for key, bindings in ports.items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in bindings or []:
            public = int(b["HostPort"])
            out.append({"IP": b.get("HostIp", ""), "PrivatePort": int(port), "PublicPort": public, "Type": proto})
    return out


def new_record(
    cid: str, name: str, config: dict[str, Any], host_config: dict[str, Any], image_id: str, driver: str, root: Path
) -> dict[str, Any]:
    argv = command_of(config)
    cdir = root / cid
    return {
        "Id": cid,
        "Created": rfc3339_nano(),
        "Path": argv[0],
        "Args": argv[1:],
        "State": {
            "Status": "created",
            "Running": False,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": ZERO_TIME,
            "FinishedAt": ZERO_TIME,
        },
        "Image": image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": str(cdir / "container.log"),
        "Name": name,
        "RestartCount": 0,
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Data": None, "Name": driver},
        "Mounts": [],
        "Config": config,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": {},
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": {},
        },
    }

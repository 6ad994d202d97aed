"""System routes: /_ping, /version, /info, /events."""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Iterator
from typing import Any

import dockyard
from dockyard.api.http import Request, Response, StreamResponse, json_response
from dockyard.api.router import API_VERSION, MIN_API_VERSION, Router
from dockyard.util.timefmt import parse_rfc3339, rfc3339_nano

PING_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Builder-Version": "1",
    "Swarm": "inactive",
    "Docker-Experimental": "false",
}


def common_headers() -> dict[str, str]:
    """Headers on every response, as moby's version middleware sets them."""
    return {"Api-Version": API_VERSION, "Ostype": "linux", "Server": f"Dockyard/{dockyard.__version__} (linux)"}


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _build_time() -> str:
    """When this dockyard was installed (the package's mtime), in docker's format; the CLI omits ""."""
    from dockyard.util.timefmt import rfc3339_nano

    return rfc3339_nano(os.path.getmtime(dockyard.__file__))


def version_info() -> dict[str, Any]:
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "dockyard",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _arch(),
        "KernelVersion": platform.release(),
        "Experimental": False,
        "BuildTime": _build_time(),
    }
    # docker's CLI decodes Components[].Details as map[string]string: every value a string.
    component_details = {k: ("false" if v is False else "true" if v is True else v) for k, v in details.items()}
    return {
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": dockyard.__version__, "Details": component_details}],
        "Version": dockyard.__version__,
        **details,
    }


def register(router: Router, daemon: Any) -> None:
    @router.route("GET", "/_ping")
    def ping(req: Request) -> Response:
        return Response(200, b"OK", "text/plain; charset=utf-8", dict(PING_HEADERS))

    @router.route("GET", "/version")
    def version(req: Request) -> Response:
        return json_response(version_info())

    @router.route("GET", "/info")
    def info(req: Request) -> Response:
        return json_response(system_info(daemon))

    @router.route("GET", "/events")
    def events(req: Request) -> StreamResponse:
        since = _time_arg(req.arg("since"))
        until = _time_arg(req.arg("until"))
        stream = daemon.events.stream(since, until, req.json_filters())

        def gen() -> Iterator[bytes]:
            for event in stream:
                yield (json.dumps(event) + "\n").encode() if event else b""

        return StreamResponse(gen())


def _time_arg(value: str | None) -> float | None:
    """Docker accepts unix seconds (with fraction) or RFC 3339."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return parse_rfc3339(value)


def system_info(daemon: Any) -> dict[str, Any]:
    containers = daemon.containers.all()
    running = sum(1 for c in containers if c.running and not c.state.get("Paused"))
    paused = sum(1 for c in containers if c.state.get("Paused"))
    mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    runtimes = {"builtin": {"path": "dockyard-builtin"}}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            runtimes[name] = {"path": path}
    return {
        "ID": daemon.engine_id,
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(daemon.images.list()),
        "Driver": daemon.snapshotter.name,
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": cgroup_version == "1",
        "NGoroutines": 0,
        "SystemTime": rfc3339_nano(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem_total,
        "GenericResources": None,
        "DockerRootDir": str(daemon.data_root),
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": platform.node(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": dockyard.__version__,
        "Runtimes": runtimes,
        "DefaultRuntime": daemon.containers.default_runtime,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": [
            "name=seccomp,profile=builtin",
            "name=cgroupns" if cgroup_version == "2" else "name=nocgroupns",
        ],
        "Warnings": None,
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"

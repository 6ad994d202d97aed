"""docker's --pid, --ipc and --uts modes: which namespaces a container shares, and with whom.

`host` keeps the host's namespace; `container:<name|id>` joins a running container's (the IPC one only
if that container was made `shareable`, docker's default being `private`); anything else is the
container's own. The network mode is the network service's business (daemon/networks.py).

A `shareable` container's /dev/shm is a tmpfs on the host (`<container dir>/shm`, as moby's ShmPath),
bind-mounted into it and into every container that joins its IPC namespace: a mount made inside one
container's mount namespace could not be bind-mounted into another's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from dockyard.errors import Conflict, InvalidParameter

PID_MODES = ("", "host")
IPC_MODES = ("", "none", "private", "shareable", "host")
UTS_MODES = ("", "host")


def validate_modes(config: dict[str, Any], host_config: dict[str, Any]) -> None:
    """moby's checks on a create request (before the image's config is merged)."""
    for key, allowed, what in (("PidMode", PID_MODES, "PID"), ("IpcMode", IPC_MODES, "IPC")):
        mode = host_config.get(key) or ""
        if mode not in allowed and not (mode.startswith("container:") and mode.partition(":")[2]):
            raise InvalidParameter(f"invalid {what} mode: {mode}")
    uts = host_config.get("UTSMode") or ""
    if uts not in UTS_MODES:
        raise InvalidParameter(f"invalid UTS mode: {uts}")
    if uts == "host" and config.get("Hostname"):
        raise InvalidParameter("conflicting options: hostname and the UTS mode")


def shared_namespaces(c: Any, lookup: Callable[[str], Any]) -> tuple[dict[str, str | None], str | None]:
    """For build_spec: {namespace type: path to join, or None for the host's}, and the /dev/shm to
    bind instead of a private one (None: its own)."""
    hc = c.host_config
    joined: dict[str, str | None] = {}
    shm = None
    if hc.get("NetworkMode") == "host":
        joined["network"] = None
    if hc.get("UTSMode") == "host":
        joined["uts"] = None
    pid_mode = hc.get("PidMode") or ""
    if pid_mode == "host":
        joined["pid"] = None
    elif pid_mode.startswith("container:"):
        joined["pid"] = f"/proc/{_running(lookup, c, pid_mode, 'PID').state['Pid']}/ns/pid"
    ipc_mode = hc.get("IpcMode") or ""
    if ipc_mode == "host":
        joined["ipc"], shm = None, "/dev/shm"
    elif ipc_mode == "shareable":
        shm = shm_path(c)
    elif ipc_mode.startswith("container:"):
        owner = _running(lookup, c, ipc_mode, "IPC")
        owner_mode = owner.host_config.get("IpcMode") or ""
        if owner_mode not in ("shareable", "host"):
            raise Conflict("non-shareable IPC (hint: use IpcMode:shareable for the donor container)")
        joined["ipc"] = f"/proc/{owner.state['Pid']}/ns/ipc"
        shm = "/dev/shm" if owner_mode == "host" else shm_path(owner)
    return joined, shm


def shm_path(c: Any) -> str:
    return str(c.dir / "shm")


def mount_shm(c: Any) -> None:
    """The host-side /dev/shm of a `shareable` container (before its start)."""
    from dockyard.runtime.spec import DEFAULT_SHM_SIZE
    from dockyard.storage import MS_NODEV, MS_NOEXEC, MS_NOSUID, is_mountpoint, mount

    if (c.host_config.get("IpcMode") or "") != "shareable":
        return
    path = shm_path(c)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not is_mountpoint(path):
        size = int(c.host_config.get("ShmSize") or DEFAULT_SHM_SIZE)
        mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=1777,size={size}")


def unmount_shm(c: Any) -> None:
    """Release it when the container stops (joined containers keep the pages they mapped)."""
    from dockyard.storage import unmount

    if os.path.isdir(shm_path(c)):
        unmount(shm_path(c))


def _running(lookup: Callable[[str], Any], c: Any, mode: str, what: str) -> Any:
    ref = mode.partition(":")[2]
    owner = lookup(ref)
    if owner.id == c.id:
        raise InvalidParameter(f"cannot join own {what} namespace")
    if not owner.running:
        raise Conflict(f"cannot join {what} of a non running container: {ref}")
    return owner

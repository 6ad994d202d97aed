"""Turn a container record (docker-inspect shape) into an OCI runtime-spec config.json.

Mirrors what moby puts in a spec (oci/defaults.go, daemon/oci_linux.go) so that runc, crun and
the builtin runtime all run the container the way docker would.
"""

from __future__ import annotations

import os
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime.base import RuntimeFailure
from dockyard.runtime.builtin.caps import DEFAULT_CAPABILITIES, all_capabilities
from dockyard.runtime.seccomp_profile import container_seccomp
from dockyard.runtime.user import UserLookupError, resolve_groups, resolve_user

OCI_VERSION = "1.1.0"  # the newest that runc 1.1 and crun 1.8 (Debian 12) accept
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
DEFAULT_NOFILE = 1048576
CPU_PERIOD = 100_000

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# moby oci/defaults.go: deny everything, then the devices every container may use.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    *(
        {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
    ),
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]

INIT_BINARIES = ("docker-init", "tini-static")  # static: it runs in images without a libc
INIT_IN_CONTAINER = "/sbin/docker-init"
ETC_FILES = (("/etc/resolv.conf", "ResolvConfPath"), ("/etc/hostname", "HostnamePath"), ("/etc/hosts", "HostsPath"))
_DEVPTS_OPTIONS = ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
NAMESPACES = ("pid", "network", "ipc", "uts", "mount")

_RLIMIT_NAMES = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack", "as",
}  # fmt: skip


def build_spec(
    container: dict,
    rootfs: str,
    *,
    cgroups_path: str,
    netns_path: str | None = None,
    namespaces: dict[str, str | None] | None = None,
    shm_source: str | None = None,
) -> dict:
    """The OCI config.json for `container`, whose root filesystem is mounted at `rootfs`.

    `namespaces` maps a namespace type to the path of one to join, or to None to stay in the host's
    (docker's host/container modes); `netns_path` is the network one. `shm_source` replaces the
    private /dev/shm with a bind of another's (--ipc host or container:X)."""
    joined = dict(namespaces or {})
    if netns_path:
        joined.setdefault("network", netns_path)
    config = container.get("Config") or {}
    host = container.get("HostConfig") or {}
    privileged = bool(host.get("Privileged"))
    hostname = config.get("Hostname") or container["Id"][:12]

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "root": {"path": "rootfs", "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": _mounts(container, host, privileged),
        "process": _process(container, config, host, rootfs, hostname, privileged),
        "linux": {
            "namespaces": _namespaces(joined),
            "cgroupsPath": cgroups_path,
            "resources": resources_from_host_config(host, privileged),
            "devices": [],
            "sysctl": dict(host.get("Sysctls") or {}),
            "maskedPaths": [] if privileged else list(MASKED_PATHS),
            "readonlyPaths": [] if privileged else list(READONLY_PATHS),
        },
    }
    devices, rules = custom_devices(host.get("Devices") or [])
    if privileged:  # every host device, as moby's privileged containers get them
        everything = host_devices()
        taken = {d["path"] for d in everything}
        devices = [*everything, *(d for d in devices if d["path"] not in taken)]
    spec["linux"]["devices"] = devices
    spec["linux"]["resources"]["devices"] += rules
    if "uts" in joined and joined["uts"] is None:  # --uts host: no hostname of its own to set
        del spec["hostname"]
    if shm_source:
        spec["mounts"] = [
            _mount("/dev/shm", "bind", shm_source, ["rbind"]) if m["destination"] == "/dev/shm" else m
            for m in spec["mounts"]
        ]
    if host.get("Init"):  # --init: docker-init (tini) as pid 1, reaping zombies and forwarding signals
        spec["process"]["args"] = [INIT_IN_CONTAINER, "--", *spec["process"]["args"]]
        spec["mounts"].append(_mount(INIT_IN_CONTAINER, "bind", init_binary(), ["bind", "ro"]))
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if not privileged:  # moby: a privileged container gets no seccomp filter, whatever SecurityOpt says
        seccomp = container_seccomp(host.get("SecurityOpt") or [], spec["process"]["capabilities"]["bounding"])
        if seccomp is not None:
            spec["linux"]["seccomp"] = seccomp
    return spec


def custom_devices(requested: list[dict]) -> tuple[list[dict], list[dict]]:
    """`--device HOST[:CONTAINER[:PERMS]]`: linux.devices nodes and their cgroup allow rules, read from
    the host's nodes (every node under a directory, as moby's devicesFromPath does)."""
    import stat

    nodes: list[dict] = []
    rules: list[dict] = []
    for device in requested:
        source = device.get("PathOnHost") or ""
        target = device.get("PathInContainer") or source
        access = device.get("CgroupPermissions") or "rwm"
        try:
            found = [(source, target)]
            if os.path.isdir(source):
                found = [
                    (os.path.join(d, f), os.path.join(target, os.path.relpath(os.path.join(d, f), source)))
                    for d, _, files in os.walk(source)
                    for f in files
                ]
            for host_path, path in found:
                st = os.stat(host_path)
                if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                    if len(found) > 1:
                        continue
                    raise OSError(f"{host_path} is not a device node")
                kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
                number = {"type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}
                nodes.append({"path": path, **number, "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0})
                rules.append({"allow": True, **number, "access": access})
        except OSError as exc:
            detail = exc.strerror.lower() if exc.strerror else str(exc)
            raise InvalidParameter(
                f'error gathering device information while adding custom device "{source}": {detail}'
            ) from None
    return nodes, rules


_NOT_HOST_DEVICES = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(root: str = "/dev") -> list[dict]:
    """The host's device nodes for a privileged container (runc's HostDevices: no pts, shm, console)."""
    import stat

    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _NOT_HOST_DEVICES]
        for name in files:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if path == "/dev/console" or not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
            found.append({"path": path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                          "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})  # fmt: skip
    return found


def init_binary() -> str:
    """The host's docker-init (docker.io links it to the tini package's static build), as moby's
    LookupInitPath finds it."""
    import shutil

    for name in INIT_BINARIES:
        path = shutil.which(name)
        if path is not None:
            return os.path.realpath(path)
    raise RuntimeFailure(f'exec: "{INIT_BINARIES[0]}": executable file not found in $PATH', 125)


def _process(container: dict, config: dict, host: dict, rootfs: str, hostname: str, privileged: bool) -> dict:
    try:
        user = resolve_user(rootfs, config.get("User") or "")
    except UserLookupError as exc:
        raise RuntimeFailure(str(exc), 125) from None
    caps = tweak_capabilities(list(DEFAULT_CAPABILITIES), host.get("CapAdd"), host.get("CapDrop"), privileged)
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": {"uid": user.uid, "gid": user.gid},
        "args": [container["Path"], *(container.get("Args") or [])],
        "env": container_env(config.get("Env") or [], hostname, bool(config.get("Tty"))),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": _rlimits(host.get("Ulimits") or []),
        "noNewPrivileges": _no_new_privileges(host.get("SecurityOpt") or []),
    }
    try:
        extra = resolve_groups(rootfs, list(host.get("GroupAdd") or []))
    except UserLookupError as exc:
        raise RuntimeFailure(str(exc), 125) from None
    gids = [*user.additional_gids, *(g for g in extra if g not in user.additional_gids)]
    if gids:
        process["user"]["additionalGids"] = gids
    if host.get("OomScoreAdj"):
        process["oomScoreAdj"] = int(host["OomScoreAdj"])
    return process


def container_env(env: list[str], hostname: str, tty: bool) -> list[str]:
    """docker's CreateDaemonEnvironment: PATH if absent, HOSTNAME, TERM=xterm with a tty, then the
    container's own variables replacing same-named ones."""
    base = []
    if not any(e.split("=", 1)[0] == "PATH" for e in env):
        base.append(f"PATH={DEFAULT_PATH}")
    base.append(f"HOSTNAME={hostname}")
    if tty:
        base.append("TERM=xterm")
    merged: dict[str, str] = {}
    for entry in base + list(env):
        merged[entry.split("=", 1)[0]] = entry
    return list(merged.values())


def _normalize_caps(names: list[str] | None) -> tuple[list[str], bool]:
    """Docker accepts `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN`; "ALL" is a flag."""
    known = set(all_capabilities())
    result: list[str] = []
    everything = False
    for raw in names or ():
        name = raw.strip().upper()
        if name == "ALL":
            everything = True
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in known:
            raise InvalidParameter(f"unknown capability: {raw!r}".replace("'", '"'))
        if name not in result:
            result.append(name)
    return result, everything


def tweak_capabilities(
    basics: list[str], adds: list[str] | None, drops: list[str] | None, privileged: bool
) -> list[str]:
    """moby's caps.TweakCapabilities: privileged → all; add ALL → all minus drops; drop ALL → only adds."""
    if privileged:
        return all_capabilities()
    if not adds and not drops:
        return list(basics)
    cap_drop, drop_all = _normalize_caps(drops)
    cap_add, add_all = _normalize_caps(adds)
    if add_all:
        return [c for c in all_capabilities() if c not in cap_drop]
    if drop_all:
        return cap_add
    caps = [c for c in basics if c not in cap_drop]
    return caps + [c for c in cap_add if c not in caps]


def _default_nofile() -> int:
    """Docker's containers inherit dockerd's nofile limit (1048576 under its systemd unit). Without
    CAP_SYS_RESOURCE (a nested sandbox) no runtime can raise a hard limit, so never ask above ours."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return DEFAULT_NOFILE if hard == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard)


def _rlimits(ulimits: list[dict]) -> list[dict]:
    nofile = _default_nofile()
    limits = {"nofile": (nofile, nofile)}
    for ulimit in ulimits:
        name = str(ulimit.get("Name", "")).lower()
        if name not in _RLIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {ulimit.get('Name')}")
        limits[name] = (int(ulimit.get("Soft", 0)), int(ulimit.get("Hard", 0)))
    return [{"type": f"RLIMIT_{n.upper()}", "hard": hard, "soft": soft} for n, (soft, hard) in limits.items()]


def _no_new_privileges(security_opts: list[str]) -> bool:
    for opt in security_opts:
        key, sep, value = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            return not sep or value.lower() in ("true", "1")
    return False


def _namespaces(joined: dict[str, str | None]) -> list[dict]:
    """A new namespace of each type, except those joined by path or kept from the host (None)."""
    namespaces = []
    for ns in NAMESPACES:
        if ns in joined and joined[ns] is None:
            continue
        namespaces.append({"type": ns, "path": joined[ns]} if joined.get(ns) else {"type": ns})
    return namespaces


def _mounts(container: dict, host: dict, privileged: bool) -> list[dict]:
    shm_size = int(host.get("ShmSize") or DEFAULT_SHM_SIZE)
    sys_mode = "rw" if privileged else "ro"
    mounts = [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", *_DEVPTS_OPTIONS]),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", sys_mode]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", [sys_mode, "nosuid", "noexec", "nodev"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]),
    ]
    user: list[dict] = []
    for dest, opts in (host.get("Tmpfs") or {}).items():
        options = ["nosuid", "nodev", "noexec", *[o for o in opts.split(",") if o]]
        user.append(_mount(dest, "tmpfs", "tmpfs", options))
    for m in container.get("Mounts") or ():
        if m.get("Type") == "tmpfs":
            user.append(_mount(m["Destination"], "tmpfs", "tmpfs", _tmpfs_options(host, m)))
        elif m.get("Type", "bind") in ("bind", "volume") and m.get("Source"):
            options = ["rbind", "rw" if m.get("RW", True) else "ro", m.get("Propagation") or "rprivate"]
            user.append(_mount(m["Destination"], "bind", m["Source"], options))
    taken = {m["destination"] for m in user}
    for dest, key in ETC_FILES:
        if container.get(key) and dest not in taken:  # the network service's generated files
            mounts.append(_mount(dest, "bind", container[key], ["rbind", "rprivate"]))
    # Parents before children (docker's sortMounts), so `-v v:/data --tmpfs /data/tmp` stacks right.
    return mounts + sorted(user, key=lambda m: m["destination"].rstrip("/").count("/"))


def _tmpfs_options(host: dict, mount: dict) -> list[str]:
    """A `--mount type=tmpfs` entry's options from its HostConfig.Mounts TmpfsOptions (size, mode)."""
    options = ["nosuid", "nodev", "noexec", "rw" if mount.get("RW", True) else "ro"]
    for m in host.get("Mounts") or ():
        if m.get("Type") == "tmpfs" and (m.get("Target") or "").rstrip("/") == mount["Destination"]:
            tmpfs = m.get("TmpfsOptions") or {}
            if tmpfs.get("SizeBytes"):
                options.append(f"size={int(tmpfs['SizeBytes'])}")
            if tmpfs.get("Mode"):
                options.append(f"mode={int(tmpfs['Mode']):o}")
    return options


def _mount(destination: str, fstype: str, source: str, options: list[str]) -> dict:
    return {"destination": destination, "type": fstype, "source": source, "options": options}


def resources_from_host_config(host: dict, privileged: bool = False) -> dict:
    """linux.resources from HostConfig limits (memory, cpu, pids, devices)."""
    devices = [{"allow": True, "access": "rwm"}] if privileged else [dict(r) for r in DEFAULT_DEVICE_RULES]
    resources: dict[str, Any] = {"devices": devices}
    memory: dict[str, Any] = {}
    limit = int(host.get("Memory") or 0)
    if limit > 0:
        memory["limit"] = limit
        swap = int(host.get("MemorySwap") or 0)
        memory["swap"] = 2 * limit if swap == 0 else swap  # moby adaptContainerSettings: default 2x
    elif int(host.get("MemorySwap") or 0) == -1:
        memory["swap"] = -1
    if int(host.get("MemoryReservation") or 0) > 0:
        memory["reservation"] = int(host["MemoryReservation"])
    if host.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        resources["memory"] = memory

    cpu: dict[str, Any] = {}
    if int(host.get("CpuShares") or 0) > 0:
        cpu["shares"] = int(host["CpuShares"])
    nano = int(host.get("NanoCpus") or 0)
    if nano > 0:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = nano * CPU_PERIOD // 1_000_000_000
    else:
        if int(host.get("CpuPeriod") or 0) > 0:
            cpu["period"] = int(host["CpuPeriod"])
        if int(host.get("CpuQuota") or 0) > 0:
            cpu["quota"] = int(host["CpuQuota"])
    if host.get("CpusetCpus"):
        cpu["cpus"] = host["CpusetCpus"]
    if host.get("CpusetMems"):
        cpu["mems"] = host["CpusetMems"]
    if cpu:
        resources["cpu"] = cpu
    pids = int(host.get("PidsLimit") or 0)
    if pids > 0:
        resources["pids"] = {"limit": pids}
    return resources

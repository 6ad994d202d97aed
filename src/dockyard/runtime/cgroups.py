"""Container cgroups: one interface, a cgroup v1 and a cgroup v2 implementation.

`open_cgroup("/dockyard/<id>")` picks the implementation for this host once (v2 when
/sys/fs/cgroup/cgroup.controllers exists). Paths are absolute from each hierarchy's root, as
runc's cgroupfs driver takes them, so a container's cgroup never nests inside the caller's own
(this machine's processes live in a nested memory cgroup; a container must get its own limits).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:  # the contract is for the type checker; at run time `typing` stays out of the monitor
    Protocol = object

CGROUP_ROOT = "/sys/fs/cgroup"
_SETTLE_TIMEOUT = 10.0
_V1_CPU_FILES = (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"))
_V1_STAT_CONTROLLERS = ("memory", "cpuacct", "pids", "blkio")


class Cgroup(Protocol):
    """Operations the runtime and the daemon need on one container's cgroup."""

    path: str

    def create(self) -> None: ...
    def apply(self, resources: dict) -> None: ...
    def join(self) -> None: ...
    def pids(self) -> list[int]: ...
    def stats(self) -> dict: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def oom_killed(self) -> bool: ...
    def kill_all(self, sig: int = signal.SIGKILL) -> None: ...
    def remove(self) -> None: ...


def is_cgroup2(root: str = CGROUP_ROOT) -> bool:
    """True on a unified (v2-only) host."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def open_cgroup(cgroups_path: str, root: str = CGROUP_ROOT, version: int | None = None) -> Cgroup:
    """The cgroup at `cgroups_path` ("/dockyard/<id>") under this host's hierarchy."""
    if version is None:
        version = 2 if is_cgroup2(root) else 1
    return CgroupV2(cgroups_path, root) if version == 2 else CgroupV1(cgroups_path)


def _clean_path(cgroups_path: str) -> str:
    """Normalise and refuse anything that would leave the hierarchy ("..")."""
    parts = [p for p in cgroups_path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"invalid cgroups path: {cgroups_path!r}")
    return "/".join(parts)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _read_int(path: str, default: int = 0) -> int:
    try:
        text = _read(path)
    except OSError:
        return default
    return default if text in ("", "max") else int(text.split()[0])


def _write(path: str, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read_kv(path: str) -> dict[str, int]:
    """A flat-keyed file ("key value" per line) such as memory.stat or cpu.stat."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def _procs(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _rmdir_quietly(directory: str) -> None:
    """rmdir, tolerating a directory already gone; retries EBUSY while the kernel settles."""
    deadline = time.monotonic() + _SETTLE_TIMEOUT
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Common:
    """Logic both versions share: signalling members and tearing down."""

    path: str

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def _dirs(self) -> list[str]:
        raise NotImplementedError

    def _kill_members(self, sig: int) -> None:
        """Freeze so nobody forks while we signal, signal everyone, thaw so signals land."""
        with contextlib.suppress(OSError):
            self.freeze()
        try:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        finally:
            with contextlib.suppress(OSError):
                self.thaw()

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Deliver `sig` to every process in the cgroup."""
        self._kill_members(sig)

    def remove(self) -> None:
        """Kill stragglers, wait until empty, remove every directory. Idempotent."""
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        while any(os.path.isdir(d) for d in self._dirs()) and self.pids():
            self.kill_all(signal.SIGKILL)
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"cgroup {self.path} still has processes {self.pids()}")
            time.sleep(0.01)
        for directory in self._dirs():
            _rmdir_quietly(directory)


class CgroupV1(_Common):
    """Legacy hierarchies: one directory per mounted controller (/sys/fs/cgroup/<ctrl>/<path>)."""

    def __init__(self, cgroups_path: str) -> None:
        self.path = "/" + _clean_path(cgroups_path)
        self.mounts = v1_mountpoints()

    def dir(self, controller: str) -> str | None:
        mountpoint = self.mounts.get(controller)
        return None if mountpoint is None else mountpoint + self.path

    def _dirs(self) -> list[str]:
        return sorted({mp + self.path for mp in self.mounts.values()})

    def create(self) -> None:
        for directory in self._dirs():
            os.makedirs(directory, exist_ok=True)
        if "cpuset" in self.mounts:
            self._init_cpuset()

    def _init_cpuset(self) -> None:
        """A v1 cpuset starts empty and refuses tasks: inherit cpus/mems down from the root."""
        chain = [self.mounts["cpuset"]]
        for part in self.path.strip("/").split("/"):
            chain.append(os.path.join(chain[-1], part))
        for parent, child in itertools.pairwise(chain):
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(child, name)):
                    _write(os.path.join(child, name), _read(os.path.join(parent, name)))

    def join(self) -> None:
        """Move the calling process in. It must be single-threaded (a freshly forked child): then
        writing "0" to `tasks` moves it without the kernel's global threadgroup write lock, whose
        RCU grace period makes a `cgroup.procs` write cost 5-15 ms per hierarchy set."""
        for directory in self._dirs():
            _write(os.path.join(directory, "tasks"), 0)

    def pids(self) -> list[int]:
        directory = self.dir("pids") or self.dir("memory") or self._dirs()[0]
        return _procs(directory)

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        mem_dir = self.dir("memory")
        if mem_dir and memory:
            self._apply_memory(mem_dir, memory)
        cpu = resources.get("cpu") or {}
        cpu_dir = self.dir("cpu")
        if cpu_dir:
            for key, name in _V1_CPU_FILES:
                if cpu.get(key):
                    _write(os.path.join(cpu_dir, name), cpu[key])
        cpuset_dir = self.dir("cpuset")
        if cpuset_dir:
            for key in ("cpus", "mems"):
                if cpu.get(key):
                    _write(os.path.join(cpuset_dir, f"cpuset.{key}"), cpu[key])
        pids_dir = self.dir("pids")
        limit = (resources.get("pids") or {}).get("limit")
        if pids_dir and limit:
            _write(os.path.join(pids_dir, "pids.max"), "max" if limit <= 0 else limit)
        devices_dir = self.dir("devices")
        if devices_dir and resources.get("devices"):
            self._apply_devices(devices_dir, resources["devices"])

    @staticmethod
    def _apply_memory(mem_dir: str, memory: dict) -> None:
        limit, swap = memory.get("limit"), memory.get("swap")
        settings = []
        if limit:
            settings.append(("memory.limit_in_bytes", limit))
        if swap and os.path.exists(os.path.join(mem_dir, "memory.memsw.limit_in_bytes")):
            settings.append(("memory.memsw.limit_in_bytes", swap))
        # memsw must stay >= limit: raising works swap-first, lowering limit-first.
        try:
            for name, value in settings:
                _write(os.path.join(mem_dir, name), value)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            for name, value in reversed(settings):
                _write(os.path.join(mem_dir, name), value)
        if memory.get("reservation"):
            _write(os.path.join(mem_dir, "memory.soft_limit_in_bytes"), memory["reservation"])
        if memory.get("disableOOMKiller"):
            _write(os.path.join(mem_dir, "memory.oom_control"), 1)

    @staticmethod
    def _apply_devices(devices_dir: str, rules: list[dict]) -> None:
        for rule in rules:
            kind = rule.get("type", "a")
            major = "*" if rule.get("major") in (None, -1) else rule["major"]
            minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
            line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"
            _write(os.path.join(devices_dir, "devices.allow" if rule.get("allow") else "devices.deny"), line)

    def stats(self) -> dict:
        mem, cpuacct, pids, blkio = (self.dir(c) or "/nonexistent" for c in _V1_STAT_CONTROLLERS)
        read = write = 0
        with contextlib.suppress(OSError), open(os.path.join(blkio, "blkio.throttle.io_service_bytes")) as f:
            for line in f:
                fields = line.split()
                if len(fields) == 3 and fields[1] == "Read":
                    read += int(fields[2])
                elif len(fields) == 3 and fields[1] == "Write":
                    write += int(fields[2])
        return {
            "memory": {
                "usage": _read_int(os.path.join(mem, "memory.usage_in_bytes")),
                "max_usage": _read_int(os.path.join(mem, "memory.max_usage_in_bytes")),
                "limit": _read_int(os.path.join(mem, "memory.limit_in_bytes")),
                "stats": _read_kv(os.path.join(mem, "memory.stat")),
                "failcnt": _read_int(os.path.join(mem, "memory.failcnt")),
            },
            "cpu": {"usage_ns": _read_int(os.path.join(cpuacct, "cpuacct.usage"))},
            "pids": {"current": _read_int(os.path.join(pids, "pids.current")),
                     "limit": _read_int(os.path.join(pids, "pids.max"))},
            "blkio": {"read_bytes": read, "write_bytes": write},
        }  # fmt: skip

    def _set_freezer(self, state: str) -> None:
        directory = self.dir("freezer")
        if directory is None:
            raise OSError(errno.ENOTSUP, "no freezer cgroup controller")
        _write(os.path.join(directory, "freezer.state"), state)
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        while _read(os.path.join(directory, "freezer.state")) != state:
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"cgroup {self.path} did not reach {state}")
            _write(os.path.join(directory, "freezer.state"), state)
            time.sleep(0.005)

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def oom_killed(self) -> bool:
        directory = self.dir("memory")
        if directory is None:
            return False
        control = _read_kv(os.path.join(directory, "memory.oom_control"))
        return control.get("oom_kill", 0) > 0


def v1_mountpoints() -> dict[str, str]:
    """controller (or "name=systemd") -> mountpoint of each mounted v1 hierarchy."""
    result: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fields = after.split()
            if len(fields) < 3 or fields[0] != "cgroup":
                continue
            mountpoint = before.split()[4]
            for option in fields[2].split(","):
                if option in ("rw", "ro") or option.startswith(("clone_children", "release_agent", "xattr")):
                    continue
                result.setdefault(option, mountpoint)
    return result


class CgroupV2(_Common):
    """The unified hierarchy: one directory, controllers enabled top-down via subtree_control."""

    def __init__(self, cgroups_path: str, root: str = CGROUP_ROOT) -> None:
        self.path = "/" + _clean_path(cgroups_path)
        self.root = root
        self.dir = root + self.path

    def _dirs(self) -> list[str]:
        return [self.dir]

    def create(self) -> None:
        available = _read(os.path.join(self.root, "cgroup.controllers")).split()
        current = self.root
        for part in self.path.strip("/").split("/"):
            if available:
                # A parent must delegate controllers before its children can use them.
                enable = " ".join("+" + c for c in available)
                with contextlib.suppress(OSError):
                    _write(os.path.join(current, "cgroup.subtree_control"), enable)
            current = os.path.join(current, part)
            os.makedirs(current, exist_ok=True)
            available = _read(os.path.join(current, "cgroup.controllers")).split()

    def join(self) -> None:
        """Move the calling process in (v2 has no cheaper per-thread path for a domain cgroup)."""
        _write(os.path.join(self.dir, "cgroup.procs"), 0)

    def pids(self) -> list[int]:
        return _procs(self.dir)

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        if memory.get("limit"):
            self._set("memory.max", memory["limit"])
            swap = memory.get("swap")
            if swap:
                self._set("memory.swap.max", "max" if swap < 0 else max(swap - memory["limit"], 0))
        if memory.get("reservation"):
            self._set("memory.low", memory["reservation"])
        cpu = resources.get("cpu") or {}
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or "max"
            self._set("cpu.max", f"{quota} {cpu.get('period') or 100000}")
        if cpu.get("shares"):
            self._set("cpu.weight", 1 + ((int(cpu["shares"]) - 2) * 9999) // 262142)
        for key in ("cpus", "mems"):
            if cpu.get(key):
                self._set(f"cpuset.{key}", cpu[key])
        limit = (resources.get("pids") or {}).get("limit")
        if limit:
            self._set("pids.max", "max" if limit <= 0 else limit)
        # TODO: device rules need an eBPF program on v2 (BPF_CGROUP_DEVICE); not applied yet.

    def _set(self, name: str, value: str | int) -> None:
        _write(os.path.join(self.dir, name), value)

    def stats(self) -> dict:
        cpu = _read_kv(os.path.join(self.dir, "cpu.stat"))
        read = write = 0
        with contextlib.suppress(OSError), open(os.path.join(self.dir, "io.stat")) as f:
            for line in f:
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    read += int(value) if key == "rbytes" else 0
                    write += int(value) if key == "wbytes" else 0
        return {
            "memory": {
                "usage": _read_int(os.path.join(self.dir, "memory.current")),
                "max_usage": _read_int(os.path.join(self.dir, "memory.peak")),
                "limit": _read_int(os.path.join(self.dir, "memory.max")),
                "stats": _read_kv(os.path.join(self.dir, "memory.stat")),
                "failcnt": _read_kv(os.path.join(self.dir, "memory.events")).get("max", 0),
            },
            "cpu": {"usage_ns": cpu.get("usage_usec", 0) * 1000},
            "pids": {"current": _read_int(os.path.join(self.dir, "pids.current")),
                     "limit": _read_int(os.path.join(self.dir, "pids.max"))},
            "blkio": {"read_bytes": read, "write_bytes": write},
        }  # fmt: skip

    def _set_frozen(self, frozen: bool) -> None:
        self._set("cgroup.freeze", int(frozen))
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        while _read_kv(os.path.join(self.dir, "cgroup.events")).get("frozen", 0) != int(frozen):
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"cgroup {self.path} did not {'freeze' if frozen else 'thaw'}")
            time.sleep(0.005)

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        if sig == signal.SIGKILL and os.path.exists(os.path.join(self.dir, "cgroup.kill")):
            self._set("cgroup.kill", 1)
            return
        self._kill_members(sig)

    def oom_killed(self) -> bool:
        return _read_kv(os.path.join(self.dir, "memory.events")).get("oom_kill", 0) > 0

"""The other container/image/system verbs: top, stats, pause/unpause, update, commit, prune, df.

They sit beside ContainerService and ImageService (not inside them) because each one only combines
what those services and the container's cgroup already offer.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from dockyard.daemon.container import Container
from dockyard.daemon.health import merge as merge_healthcheck
from dockyard.errors import Conflict, DockyardError, InvalidParameter
from dockyard.util.timefmt import ZERO_TIME, rfc3339_nano

log = logging.getLogger("dockyard.container_ops")

STATS_INTERVAL = 1.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
# HostConfig keys `docker update` may change (API ContainerUpdate body).
UPDATABLE = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "BlkioWeight",
    "RestartPolicy",
)
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")


def cgroup_of(c: Container) -> Any:
    """The container's cgroup, where every runtime puts it ("/dockyard/<id>")."""
    from dockyard.runtime.cgroups import open_cgroup

    return open_cgroup(f"/dockyard/{c.id}")


def system_cpu_ns() -> int:
    """Host CPU time in ns as moby computes it (the first seven fields of /proc/stat's cpu line)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return sum(int(v) for v in fields[1:8]) * 1_000_000_000 // _CLK_TCK


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_ps_output(output: str, pids: set[int]) -> dict[str, Any]:
    """moby's parsePSOutput: titles from the header, rows of the container's pids; the last column
    keeps its spaces (commands)."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise DockyardError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise DockyardError("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise DockyardError(f"Unexpected pid '{fields[pid_index]}': not a number") from None
        if pid in pids:
            head = fields[: len(titles) - 1]
            processes.append([*head, " ".join(fields[len(titles) - 1 :])])
    return {"Titles": titles, "Processes": processes}


def _empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def empty_stats(c: Container) -> dict[str, Any]:
    """What docker answers for a container that is not running: zeros, zero times."""
    return {
        "name": c.name, "id": c.id, "read": ZERO_TIME, "preread": ZERO_TIME,
        "pids_stats": {}, "blkio_stats": _blkio(None), "num_procs": 0, "storage_stats": {},
        "cpu_stats": _empty_cpu(), "precpu_stats": _empty_cpu(), "memory_stats": {},
    }  # fmt: skip


def _blkio(entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    keys = (
        "io_service_bytes_recursive",
        "io_serviced_recursive",
        "io_queue_recursive",
        "io_service_time_recursive",
        "io_wait_time_recursive",
        "io_merged_recursive",
        "io_time_recursive",
        "sectors_recursive",
    )
    return {key: (entries if key == "io_service_bytes_recursive" else None) for key in keys}


def sample_stats(c: Container, cgroup: Any) -> dict[str, Any]:
    """One stats sample of a running container in docker's StatsResponse shape (precpu left empty)."""
    raw = cgroup.stats()
    mem = raw["memory"]
    limit = mem["limit"]
    machine = machine_memory()
    memory: dict[str, Any] = {
        "usage": mem["usage"],
        "stats": mem["stats"],
        "limit": machine if not limit or limit > machine else limit,
    }
    if "total_inactive_file" in mem["stats"]:  # cgroup v1 also reports these
        memory.update(max_usage=mem["max_usage"], failcnt=mem["failcnt"])
    pids = {"current": raw["pids"]["current"]}
    if raw["pids"]["limit"]:
        pids["limit"] = raw["pids"]["limit"]
    blkio = raw["blkio"]
    return {
        "name": c.name, "id": c.id, "read": rfc3339_nano(), "preread": ZERO_TIME,
        "pids_stats": pids,
        "blkio_stats": _blkio([{"major": 0, "minor": 0, "op": "read", "value": blkio["read_bytes"]},
                               {"major": 0, "minor": 0, "op": "write", "value": blkio["write_bytes"]}]),
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": {
            **_empty_cpu(),
            "cpu_usage": {"total_usage": raw["cpu"]["usage_ns"], "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": system_cpu_ns(), "online_cpus": os.cpu_count() or 1,
        },
        "precpu_stats": _empty_cpu(),
        "memory_stats": memory,
    }  # fmt: skip


class ContainerOps:
    """top, stats, pause/unpause, update, commit, prune and df over the container and image services."""

    def __init__(self, containers: Any, images: Any) -> None:
        self.containers = containers
        self.images = images  # daemon.image_service (store + events + in-use checks)

    @property
    def store(self) -> Any:
        return self.images.store

    def _event(self, c: Container, action: str, **extra: str) -> None:
        self.containers._event(c, action, **extra)

    @staticmethod
    def _require_running(c: Container) -> None:
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")

    # ------------------------------------------------------------------ top
    def top(self, ref: str, ps_args: str | None) -> dict[str, Any]:
        c = self.containers.get(ref)
        self._require_running(c)
        pids = set(cgroup_of(c).pids())
        args = (ps_args or "-ef").split()
        with_pids = [*args, "-q", ",".join(str(p) for p in sorted(pids))] if pids else args
        result = subprocess.run(["ps", *with_pids], capture_output=True, text=True)
        if result.returncode != 0 and with_pids is not args:  # some options (f) refuse -q: retry
            result = subprocess.run(["ps", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise DockyardError(f"ps: {result.stderr.strip() or 'exit status ' + str(result.returncode)}")
        return parse_ps_output(result.stdout, pids)

    # ------------------------------------------------------------------ stats
    def stats(self, ref: str, stream: bool = True, one_shot: bool = False) -> Iterator[dict[str, Any]]:
        """Docker's stats: streamed every second; a single answer has precpu filled (two samples, one
        second apart) unless one_shot asks for the immediate one."""
        c = self.containers.get(ref)
        if not stream and not c.running:
            return iter([empty_stats(c)])
        return self._stats_stream(c, stream, one_shot)

    def _stats_stream(self, c: Container, stream: bool, one_shot: bool) -> Iterator[dict[str, Any]]:
        previous: dict[str, Any] | None = None
        skip_first = not stream and not one_shot
        while not c.removed:
            if not c.running:
                previous = None
                yield empty_stats(c)
            else:
                try:
                    sample = sample_stats(c, cgroup_of(c))
                except OSError as exc:  # the container exited under us
                    log.debug("stats of %s: %s", c.id[:12], exc)
                    sample = empty_stats(c)
                if previous is not None:
                    sample["precpu_stats"], sample["preread"] = previous["cpu_stats"], previous["read"]
                previous = sample
                if skip_first:
                    skip_first = False
                    time.sleep(STATS_INTERVAL)
                    continue
                yield sample
            if not stream:
                return
            time.sleep(STATS_INTERVAL)

    # ------------------------------------------------------------------ pause
    def pause(self, ref: str) -> None:
        c = self.containers.get(ref)
        with c.lock:
            self._require_running(c)
            if c.state.get("Paused"):
                raise Conflict(f"Container {c.id} is already paused")
            cgroup_of(c).freeze()
            c.state.update(Paused=True, Status="paused")
            c.save()
            if self.containers.health is not None:
                self.containers.health.stop(c)  # no probes into a frozen container
        self._event(c, "pause")

    def unpause(self, ref: str) -> None:
        c = self.containers.get(ref)
        with c.lock:
            if not c.running or not c.state.get("Paused"):
                raise Conflict(f"Container {c.id} is not paused")
            cgroup_of(c).thaw()
            c.state.update(Paused=False, Status="running")
            c.save()
            if self.containers.health is not None:
                self.containers.health.start(c, reset=False)
        self._event(c, "unpause")

    # ------------------------------------------------------------------ update
    def update(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /containers/{id}/update: validate, persist in HostConfig, apply to a running cgroup."""
        c = self.containers.get(ref)
        changes = {k: v for k, v in body.items() if k in UPDATABLE and v not in (None, "")}
        if not (changes.get("RestartPolicy") or {}).get("Name"):
            changes.pop("RestartPolicy", None)  # the CLI always sends one; an empty name means unchanged
        with c.lock:
            hc = c.host_config
            merged = {**hc, **{k: v for k, v in changes.items() if v != 0 or k == "PidsLimit"}}
            self._validate_update(c, changes, merged)
            if "PidsLimit" in changes and changes["PidsLimit"] <= 0:
                merged["PidsLimit"] = 0  # 0 and -1 both mean unlimited (moby)
            if c.running:
                self._apply_resources(c, merged, changes)
            for key in UPDATABLE:
                if key in merged:
                    hc[key] = merged[key]
            c.save()
        self._event(c, "update")
        return {"Warnings": []}

    def _validate_update(self, c: Container, changes: dict[str, Any], merged: dict[str, Any]) -> None:
        if c.state["Status"] == "removing" or c.removed:
            raise Conflict(f"Cannot update container {c.id}: container is marked for removal")
        memory = changes.get("Memory") or 0
        if memory and memory < 6 * 1024 * 1024:
            raise InvalidParameter("Minimum memory limit allowed is 6MB")
        current_swap = int(c.host_config.get("MemorySwap") or 0)
        if memory and not changes.get("MemorySwap") and 0 < current_swap < memory:
            raise Conflict(
                "Memory limit should be smaller than already set memoryswap limit, "
                "update the memoryswap at the same time"
            )
        swap = int(merged.get("MemorySwap") or 0)
        if swap > 0 and swap < int(merged.get("Memory") or 0):
            raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
        nano = changes.get("NanoCpus") or 0
        if nano and (changes.get("CpuQuota") or changes.get("CpuPeriod")):
            raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        if nano and c.host_config.get("CpuQuota"):
            raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
        if changes.get("CpuQuota") and c.host_config.get("NanoCpus"):
            raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
        cpus = os.cpu_count() or 1
        if nano < 0 or nano > cpus * 1_000_000_000:
            raise InvalidParameter(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
        policy = changes.get("RestartPolicy")
        if policy is not None:
            if not isinstance(policy, dict) or policy.get("Name", "") not in RESTART_POLICIES:
                raise InvalidParameter(f"invalid restart policy '{(policy or {}).get('Name')}'")
            if c.host_config.get("AutoRemove") and policy.get("Name") not in ("", "no"):
                raise InvalidParameter(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                )

    @staticmethod
    def _apply_resources(c: Container, merged: dict[str, Any], changes: dict[str, Any]) -> None:
        from dockyard.runtime.spec import resources_from_host_config

        resources = resources_from_host_config(merged)
        resources.pop("devices", None)
        if "PidsLimit" in changes:
            resources["pids"] = {"limit": merged["PidsLimit"] or -1}  # -1 writes "max"
        try:
            cgroup_of(c).apply(resources)
        except OSError as exc:
            raise DockyardError(f"Cannot update container {c.id}: {exc.strerror or exc}") from None

    # ------------------------------------------------------------------ commit
    def commit(
        self,
        ref: str,
        *,
        repo: str = "",
        tag: str = "",
        comment: str = "",
        author: str = "",
        changes: list[str] | None = None,
        pause: bool = True,
        config: dict[str, Any] | None = None,
    ) -> str:
        """docker commit: the container's diff as a new layer on its image; returns the image id."""
        from dockyard.build.changes import apply_changes

        c = self.containers.get(ref)
        if tag and not repo:
            raise InvalidParameter("tag given without a repository")
        repo_tag = (f"{repo}:{tag}" if tag else repo) or None
        user_config = apply_changes(config or {}, changes) if changes else dict(config or {})
        new_config = merge_commit_config(user_config, c.config)
        parent = self.store.get(c.record["Image"])
        with tempfile.TemporaryFile(dir=self.store.root) as diff:
            with self._frozen(c, pause):
                self.containers.snapshotter.write_diff(c.id, diff)
            diff.seek(0)
            created_by = " ".join(c.config.get("Cmd") or [])
            image = self.store.create_image(
                new_config, parent, diff, repo_tag=repo_tag, comment=comment, author=author, created_by=created_by
            )
        self._event(c, "commit", comment=comment, imageID=image.id, imageRef=repo_tag or "")
        return image.id

    @contextlib.contextmanager
    def _frozen(self, c: Container, pause: bool) -> Iterator[None]:
        """Freeze a running container for a consistent diff, unless asked not to or already paused."""
        with c.lock:
            freeze = pause and c.running and not c.state.get("Paused")
            cgroup = cgroup_of(c) if freeze else None
            if cgroup is not None:
                cgroup.freeze()
        try:
            yield
        finally:
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    cgroup.thaw()

    # ------------------------------------------------------------------ prune
    def prune_containers(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        from dockyard.daemon.filters import container_prune_matches

        deleted, reclaimed = [], 0
        now = time.time()
        for c in self.containers.all():
            if c.running or c.state["Status"] == "removing" or not container_prune_matches(c, filters, now):
                continue
            size = self._rw_size(c)
            try:
                self.containers.remove(c.id)
            except DockyardError as exc:
                log.warning("prune: removing %s: %s", c.id[:12], exc.message)
                continue
            deleted.append(c.id)
            reclaimed += size
        self.containers.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def _rw_size(self, c: Container) -> int:
        try:
            return int(self.containers.snapshotter.snapshot_size(c.id))
        except Exception:
            return 0

    def prune_images(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """moby's ImagesPrune: dangling heads (or every unused image), skipping images in use."""
        from dockyard.daemon.image_filters import dangling_only, image_prune_matches

        dangling = dangling_only(filters)
        layer_sizes = {layer.chain_id: layer.size for image in self.store.list() for layer in image.layers}
        now = time.time()
        targets: list[list[str]] = []
        for image in self.store.list():
            names = [*image.repo_tags, *image.repo_digests]
            if self.store.children(image.id) and (dangling or not names):
                continue  # not a head (dangling mode) or an intermediate image
            if dangling and image.repo_tags:
                continue
            if self.containers.image_users(image.id) or not image_prune_matches(image, filters, now):
                continue
            targets.append(names or [image.id])
        deleted: list[dict[str, str]] = []
        for names in targets:
            for name in names:
                try:
                    deleted.extend(self.images.delete(name, force=False, prune=True))
                except DockyardError as exc:
                    log.debug("prune: %s: %s", name, exc.message)
        reclaimed = sum(layer_sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        self.images.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ------------------------------------------------------------------ df
    def disk_usage(self, types: list[str] | None = None) -> dict[str, Any]:
        """GET /system/df in docker's shape; `types` limits the work (API 1.42 `type=`)."""
        wanted = set(types or ("container", "image", "volume", "build-cache"))
        out: dict[str, Any] = {}
        if "image" in wanted:
            out.update(self._image_usage())
        if "container" in wanted:
            out["Containers"] = self.containers.list(all_=True, size=True)
        if "volume" in wanted:
            out["Volumes"] = []
        if "build-cache" in wanted:
            out["BuildCache"] = []
        return out

    def _image_usage(self) -> dict[str, Any]:
        images = self.store.list()
        users: dict[str, int] = {}
        for image in images:
            for layer in image.layers:
                users[layer.chain_id] = users.get(layer.chain_id, 0) + 1
        sizes = {layer.chain_id: layer.size for image in images for layer in image.layers}
        summaries = []
        for image in sorted(images, key=lambda i: i.created, reverse=True):
            summary = self.store.summary(image)
            summary["Containers"] = len(self.containers.image_users(image.id))
            summary["SharedSize"] = sum(layer.size for layer in image.layers if users[layer.chain_id] > 1)
            summaries.append(summary)
        return {"LayersSize": sum(sizes.values()), "Images": summaries}


def merge_commit_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """moby's merge(userConf, containerConf) for commit: the caller's config (with --change applied)
    wins; what it leaves empty comes from the container; Env, ExposedPorts, Volumes, Labels are unions."""
    config = copy.deepcopy(user)
    base = copy.deepcopy(container)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not config.get(key) and base.get(key):
            config[key] = base[key]
    env = list(config.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    config["Env"] = env + [e for e in base.get("Env") or [] if e.split("=", 1)[0] not in keys] or None
    for key in ("ExposedPorts", "Volumes", "Labels"):
        merged = {**(base.get(key) or {}), **(config.get(key) or {})}
        if merged or key == "Labels":
            config[key] = merged
    if not config.get("Entrypoint"):
        if not config.get("Cmd"):
            config["Cmd"] = base.get("Cmd")
        if config.get("Entrypoint") is None:
            config["Entrypoint"] = base.get("Entrypoint")
    healthcheck = merge_healthcheck(config.get("Healthcheck"), base.get("Healthcheck"))
    if healthcheck:
        config["Healthcheck"] = healthcheck
    return config

"""The container service: create, start, stop, kill, wait, remove, list, logs, attach, export.

Containers run under a monitor process each (runtime/monitor.py); this service drives monitors
through runtime.shim.MonitorHandle and keeps one waiter thread per running container, which
records the exit and cleans up (unmount, --rm) when the monitor reports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal as signals
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.daemon.container import (
    CONFIG_DEFAULTS,
    DEFAULT_STOP_TIMEOUT,
    HOST_CONFIG_DEFAULTS,
    Container,
    merge_image_config,
    new_record,
)
from dockyard.daemon.events import EventBus
from dockyard.daemon.health import validate as validate_healthcheck
from dockyard.daemon.logconfig import READABLE_DRIVERS, log_options, validate_log_config
from dockyard.daemon.names import random_name, validate_name
from dockyard.daemon.namespaces import mount_shm, shared_namespaces, unmount_shm, validate_modes
from dockyard.daemon.networks import check_network_mode
from dockyard.errors import Conflict, ContainerNotFound, DockyardError, InvalidParameter, NotModified
from dockyard.runtime.base import RuntimeFailure
from dockyard.util.fs import read_json
from dockyard.util.ids import new_id
from dockyard.util.timefmt import parse_rfc3339

log = logging.getLogger("dockyard.containers")

KNOWN_RUNTIMES = ("builtin", "runc", "crun")


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """Docker accepts "SIGTERM", "TERM", "15"."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {value}") from None


class ContainerService:
    def __init__(
        self,
        root: Path,
        exec_root: Path,
        images: Any,
        snapshotter: Any,
        events: EventBus,
        default_runtime: str = "builtin",
        volumes: Any = None,
    ) -> None:
        self.root = root
        self.volumes = volumes  # daemon.volumes.VolumeService: mounts at create, copy-up, release
        self.exec_root = exec_root
        self.images = images
        self.snapshotter = snapshotter
        self.events = events
        self.default_runtime = default_runtime
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.RLock()
        self.networks: Any = None  # daemon.networks.NetworkService, set by the daemon
        self.health: Any = None  # daemon.health.HealthMonitor, set by the daemon
        # Called with each container that exited (after its record and mounts are settled): the exec
        # service forgets the container's execs there, as moby's Cleanup unregisters them.
        self.exit_listeners: list[Callable[[Container], None]] = []
        root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lookup
    def all(self) -> list[Container]:
        with self._lock:
            return list(self._containers.values())

    def get(self, ref: str) -> Container:
        """Docker's lookup order: full id, name, unique id prefix."""
        with self._lock:
            if ref in self._containers:
                return self._containers[ref]
            cid = self._names.get("/" + ref.lstrip("/"))
            if cid:
                return self._containers[cid]
            if ref:
                found = [c for i, c in self._containers.items() if i.startswith(ref)]
                if len(found) == 1:
                    return found[0]
                if len(found) > 1:
                    raise InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
        raise ContainerNotFound(ref)

    def image_users(self, image_id: str) -> list[Container]:
        return [c for c in self.all() if c.record["Image"] == image_id]

    # ------------------------------------------------------------------ restore
    def restore(self) -> None:
        """Load every record; reconnect to monitors of containers that kept running."""
        for entry in sorted(self.root.iterdir()):
            record = read_json(entry / "config.v2.json")
            if not record:
                if entry.is_dir() and not any(entry.glob("config.v2.json*")):
                    shutil.rmtree(entry, ignore_errors=True)  # a create that crashed half way
                continue
            c = Container(record, self.root)
            self._containers[c.id] = c
            self._names[c.name] = c.id
            if record["State"]["Status"] == "removing":
                threading.Thread(target=self._remove_now, args=(c,), daemon=True).start()
                continue
            if c.running:
                self._reattach(c)
            elif self._restart_at_boot(c):
                threading.Thread(target=self._restart_now, args=(c,), daemon=True).start()

    @staticmethod
    def _restart_at_boot(c: Container) -> bool:
        """always and unless-stopped containers come back with the daemon (unless stopped by hand)."""
        name = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
        return name in ("always", "unless-stopped") and not c.record.get("HasBeenManuallyStopped")

    def _reattach(self, c: Container) -> None:
        from dockyard.runtime.shim import MonitorHandle, read_exit_status

        handle = MonitorHandle.connect(str(c.dir))
        if handle is not None:
            c.monitor = handle
            self._spawn_waiter(c, handle)
            if self.health is not None and not c.state.get("Paused"):
                self.health.start(c, reset=False)  # probing goes on where the last daemon left it
            return
        self._record_exit(c, None, read_exit_status(str(c.dir)))

    # ------------------------------------------------------------------ create
    def create(self, body: dict[str, Any], name: str | None) -> Container:
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("config cannot be empty in order to create a container")
        image = self.images.resolve(image_ref)
        config = {**CONFIG_DEFAULTS, **{k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}}
        host_config = {**HOST_CONFIG_DEFAULTS, **(body.get("HostConfig") or {})}
        validate_healthcheck(body.get("Healthcheck"))
        check_network_mode(body, host_config)
        host_config["LogConfig"] = validate_log_config(host_config.get("LogConfig"))
        validate_modes(body, host_config)
        merge_image_config(config, image.config.get("config") or image.config.get("Config") or {})
        self._validate_host_config(host_config)
        networks = self.networks.plan_create(host_config, body.get("NetworkingConfig")) if self.networks else {}
        cid = new_id()
        with self._lock:
            if name:
                full_name = validate_name(name)
                if full_name in self._names:
                    other = self._names[full_name]
                    raise Conflict(
                        f'Conflict. The container name "{full_name}" is already in use by container "{other}". '
                        "You have to remove (or rename) that container to be able to reuse that name."
                    )
            else:
                full_name = self._fresh_name()
            self._names[full_name] = cid
        mounts: list[dict[str, Any]] = []
        try:
            config["Image"] = image_ref
            if not config.get("Hostname"):
                config["Hostname"] = cid[:12]
            record = new_record(cid, full_name, config, host_config, image.id, self.snapshotter.name, self.root)
            record["NetworkSettings"]["Networks"] = networks
            if self.volumes is not None:
                record["Mounts"] = mounts = self.volumes.attach(cid, config, host_config, self.get)
            c = Container(record, self.root)
            c.dir.mkdir(mode=0o710)
            c.rootfs.mkdir(parents=True)
            self.snapshotter.prepare(cid, image.chain_id)
            c.save()
        except BaseException:
            with self._lock:
                self._names.pop(full_name, None)
            shutil.rmtree(self.root / cid, ignore_errors=True)
            with contextlib.suppress(Exception):
                self.snapshotter.remove(cid)
            if self.volumes is not None:
                self.volumes.release(cid, mounts, remove_anonymous=True)
            raise
        with self._lock:
            self._containers[cid] = c
        self._event(c, "create")
        return c

    def _fresh_name(self) -> str:
        for attempt in range(100):
            name = "/" + random_name(attempt)
            if name not in self._names:
                return name
        return "/" + new_id()[:16]

    @staticmethod
    def _validate_host_config(hc: dict[str, Any]) -> None:
        runtime = hc.get("Runtime") or ""
        if runtime and runtime not in KNOWN_RUNTIMES:
            raise InvalidParameter(f"unknown or invalid runtime name: {runtime}")
        if runtime in ("runc", "crun") and not shutil.which(runtime):
            raise InvalidParameter(f"unknown or invalid runtime name: {runtime}")
        policy = (hc.get("RestartPolicy") or {}).get("Name") or "no"
        if policy not in ("no", "always", "unless-stopped", "on-failure"):
            raise InvalidParameter(f"invalid restart policy '{policy}'")
        if policy != "no" and hc.get("AutoRemove"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        if policy != "on-failure" and (hc.get("RestartPolicy") or {}).get("MaximumRetryCount"):
            raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
        memory = hc.get("Memory") or 0
        if memory and memory < 6 * 1024 * 1024:
            raise InvalidParameter("Minimum memory limit allowed is 6MB")
        if (hc.get("NanoCpus") or 0) < 0:
            raise InvalidParameter("Range of CPUs is from 0.01 to the number of CPUs available")
        nano = hc.get("NanoCpus") or 0
        if nano and nano > (os.cpu_count() or 1) * 1_000_000_000:
            raise InvalidParameter(
                f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only {os.cpu_count()} CPUs available"
            )

    # ------------------------------------------------------------------ start
    def start(self, ref: str) -> None:
        c = self.get(ref)
        with c.lock:
            if c.running:
                raise NotModified("container already started")
            if c.removed or c.state["Status"] == "removing":
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            self._set_manually_stopped(c, False)
            self._start_locked(c)

    def _start_locked(self, c: Container) -> None:
        from dockyard.runtime.shim import MonitorHandle
        from dockyard.runtime.spec import build_spec

        runtime = c.host_config.get("Runtime") or self.default_runtime
        self._mount(c)
        try:
            if self.volumes is not None and c.state["StartedAt"][:4] == "0001":  # docker's copy-up
                from dockyard.daemon.volumes import nocopy_destinations

                self.volumes.populate(c.record["Mounts"], str(c.rootfs), nocopy_destinations(c.host_config))
            mount_shm(c)
            namespaces, shm = shared_namespaces(c, self.get)
            netns_path = self.networks.setup(c) if self.networks else None
            spec = build_spec(
                c.record,
                str(c.rootfs),
                cgroups_path=f"/dockyard/{c.id}",
                netns_path=netns_path,
                namespaces=namespaces,
                shm_source=shm,
            )
            from dockyard.util.fs import write_json

            write_json(c.bundle / "config.json", spec, durable=False)  # rewritten at every start
            for stale in ("exit.json",):
                (c.dir / stale).unlink(missing_ok=True)
            handle = MonitorHandle.spawn(
                container_id=c.id,
                state_dir=str(c.dir),
                bundle=str(c.bundle),
                runtime=runtime,
                runtime_root=str(self.exec_root / "runtime" / runtime),
                tty=bool(c.config.get("Tty")),
                open_stdin=bool(c.config.get("OpenStdin")),
                stdin_once=bool(c.config.get("StdinOnce")),
                **log_options(c.host_config.get("LogConfig"), str(c.log_path)),
            )
        except RuntimeFailure as exc:
            self._fail_start(c, exc)
        except DockyardError as exc:  # refused before the runtime ran (network mode, volumes...)
            self._abandon_start(c, c.state.get("ExitCode") or 128, str(exc))
            raise
        except BaseException:
            self._release_network(c)
            self._unmount(c)
            raise
        pending, c.pending_attach = c.pending_attach, []
        for session in pending:
            session.connect(handle)
        try:
            handle.start()
        except RuntimeFailure as exc:
            with contextlib.suppress(Exception):
                handle.wait()
            self._fail_start(c, exc)
        c.monitor = handle
        c.set_running(handle.pid)
        self._event(c, "start")
        self._spawn_waiter(c, handle)
        if self.health is not None:
            self.health.start(c)

    def _abandon_start(self, c: Container, exit_code: int, message: str, died: bool = False) -> None:
        """moby's containerStart cleanup for any start error: network and mounts released, waiting
        attach clients let go, the error recorded (the container stays "created"), a --rm container
        removed. `died`: the runtime ran and failed, which docker reports as a die event."""
        self._release_network(c)
        self._unmount(c)
        for session in c.pending_attach:
            session.cancel()
        c.pending_attach = []
        c.set_start_failed(exit_code, message)
        if died:
            self._event(c, "die", exitCode=str(exit_code))
        if c.host_config.get("AutoRemove"):
            threading.Thread(target=self._remove_now, args=(c,), daemon=True).start()

    def _fail_start(self, c: Container, exc: RuntimeFailure) -> None:
        self._abandon_start(c, exc.exit_code, exc.message, died=True)
        raise InvalidParameter(_start_error(exc.message)) from None

    def mount_rootfs(self, c: Container) -> str:
        """Mount a (created, not started) container's root filesystem; the builder copies into it.
        Removing the container unmounts it."""
        self._mount(c)
        return str(c.rootfs)

    def _mount(self, c: Container) -> None:
        if not os.path.ismount(c.rootfs):
            self.snapshotter.mount(c.id, str(c.rootfs))

    def _release_network(self, c: Container) -> None:
        """Network teardown (veths, addresses, ports, namespace); a failure must not block the exit."""
        if self.networks is not None:
            try:
                self.networks.teardown(c)
            except Exception as exc:
                log.warning("network teardown of %s: %s", c.id[:12], exc)

    def _unmount(self, c: Container) -> None:
        try:
            unmount_shm(c)
        except OSError as exc:
            log.warning("unmount %s: %s", c.id[:12], exc)
        if os.path.ismount(c.rootfs):
            try:
                self.snapshotter.unmount(str(c.rootfs))
            except OSError as exc:
                log.warning("unmount %s: %s", c.rootfs, exc)

    def _spawn_waiter(self, c: Container, handle: Any) -> None:
        threading.Thread(target=self._wait_exit, args=(c, handle), name=f"wait-{c.id[:12]}", daemon=True).start()

    def _wait_exit(self, c: Container, handle: Any) -> None:
        from dockyard.runtime.shim import read_exit_status

        try:
            status = handle.wait()
        except Exception as exc:  # monitor vanished: fall back to what it left on disk
            log.warning("waiting for %s: %s", c.id[:12], exc)
            status = read_exit_status(str(c.dir))
        self._record_exit(c, handle, status)

    def _record_exit(self, c: Container, handle: Any, status: Any) -> None:
        """Record the exit and unmount in one locked step, so a restart waiting on the exit never
        races the unmount of its own fresh mount; then events, --rm and the restart policy."""
        with c.lock:
            if c.monitor is not handle:
                return
            if status is None:
                c.set_exited(255, error="container monitor exited unexpectedly")
            else:
                c.set_exited(status.exit_code, status.finished_at, status.oom_killed, status.error or "")
            self._release_network(c)
            self._unmount(c)
        self._after_exit(c)

    def _after_exit(self, c: Container) -> None:
        for listener in self.exit_listeners:
            try:
                listener(c)
            except Exception:
                log.exception("exit listener %s failed for %s", listener, c.id[:12])
        if c.state["OOMKilled"]:
            self._event(c, "oom")
        self._event(c, "die", exitCode=str(c.state["ExitCode"]))
        if c.host_config.get("AutoRemove"):
            self._remove_now(c)
        elif self._should_restart(c):
            self._schedule_restart(c)

    # ------------------------------------------------------------------ restart policies
    @staticmethod
    def _should_restart(c: Container) -> bool:
        """Docker's restart policies: always, unless-stopped, on-failure[:max]; never after a stop/kill."""
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if c.removed or c.record.get("HasBeenManuallyStopped") or c.host_config.get("AutoRemove"):
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return c.state["ExitCode"] != 0 and (limit == 0 or c.record["RestartCount"] < limit)
        return False

    def _schedule_restart(self, c: Container) -> None:
        """Restart after docker's back-off: 100 ms doubling up to a minute, reset after 10 s of running."""
        ran_for = time.time() - parse_rfc3339(c.state["StartedAt"])
        c.restart_delay = 0.1 if ran_for >= 10 or not c.restart_delay else min(c.restart_delay * 2, 60.0)
        with c.lock:
            c.state.update(Restarting=True, Status="restarting")
            c.save()
        timer = threading.Timer(c.restart_delay, self._restart_now, args=(c,))
        timer.daemon = True
        timer.start()

    def _restart_now(self, c: Container) -> None:
        with c.lock:
            c.state["Restarting"] = False
            if c.removed or c.running or c.record.get("HasBeenManuallyStopped"):
                if c.state["Status"] == "restarting":
                    c.state["Status"] = "exited"
                    c.save()
                return
            c.record["RestartCount"] = c.record.get("RestartCount", 0) + 1
            try:
                self._start_locked(c)
            except DockyardError as exc:
                log.warning("restarting %s failed: %s", c.id[:12], exc.message)
                c.state["Status"] = "exited"
                c.save()
                if self._should_restart(c):
                    self._schedule_restart(c)

    def _set_manually_stopped(self, c: Container, value: bool) -> None:
        if c.record.get("HasBeenManuallyStopped") == value and not (value and c.state.get("Restarting")):
            return  # nothing changes: no write (a start would otherwise pay an fsync'd save)
        c.record["HasBeenManuallyStopped"] = value
        if value and c.state.get("Restarting"):
            c.state.update(Restarting=False, Status="exited")
        c.save()

    # ------------------------------------------------------------------ signals
    def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        sig = parse_signal(signal)
        with c.lock:
            if not c.running or c.monitor is None:
                raise Conflict(f"Cannot kill container: {ref}: container {c.id} is not running")
            self._set_manually_stopped(c, True)
            generation = c.exit_count
            c.monitor.kill(sig)
            self._thaw_if_paused(c)
            if sig == signals.SIGKILL:
                # As docker: a SIGKILL returns once the container is gone, so `kill x && rm x` works.
                c.changed.wait_for(lambda: c.exit_count != generation or not c.running, 10)
        self._event(c, "kill", signal=str(sig))

    def resize(self, ref: str, height: int, width: int) -> None:
        """Set the terminal size of a running tty container (its process group gets SIGWINCH)."""
        c = self.get(ref)
        with c.lock:
            if not c.running or c.monitor is None:
                raise Conflict(f"container {c.id} is not running")
            if not c.config.get("Tty"):
                return  # no terminal to resize: accepted, as docker does
            try:
                c.monitor.resize(height, width)
            except RuntimeFailure as exc:
                raise DockyardError(f"cannot resize container {c.id}: {exc.message}") from None

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        with c.lock:
            self._set_manually_stopped(c, True)
        if not c.running:
            raise NotModified("container already stopped")
        self._stop(c, timeout, signal)

    def _stop(self, c: Container, timeout: int | None, signal: str | None) -> None:
        sig = parse_signal(signal or c.config.get("StopSignal"), signals.SIGTERM)
        if timeout is None:
            timeout = c.config.get("StopTimeout")
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        with c.lock:
            generation = c.exit_count
            if c.running and c.monitor is not None:
                try:
                    c.monitor.kill(sig)
                except Exception as exc:
                    log.debug("stop signal to %s: %s", c.id[:12], exc)
                self._thaw_if_paused(c)
            if timeout < 0:
                c.changed.wait_for(lambda: c.exit_count != generation or not c.running)
            elif not c.changed.wait_for(lambda: c.exit_count != generation or not c.running, timeout):
                if c.monitor is not None:
                    try:
                        c.monitor.kill(signals.SIGKILL)
                    except Exception as exc:
                        log.debug("SIGKILL to %s: %s", c.id[:12], exc)
                c.changed.wait_for(lambda: c.exit_count != generation or not c.running, 30)
        self._event(c, "stop")

    def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        if c.running:
            self._stop(c, timeout, signal)
        with c.lock:
            self._start_locked(c)
        self._event(c, "restart")

    @staticmethod
    def _thaw_if_paused(c: Container) -> None:
        """Signals reach a paused container's processes only once thawed (docker unpauses on kill/stop)."""
        if c.state.get("Paused"):
            from dockyard.daemon.container_ops import cgroup_of

            with contextlib.suppress(OSError):
                cgroup_of(c).thaw()
            c.state.update(Paused=False, Status="running")

    # ------------------------------------------------------------------ wait
    def wait(self, ref: str, condition: str = "not-running") -> Callable[[], dict[str, Any]]:
        """Return a blocking function giving docker's wait body; the lookup happens now (404 early)."""
        c = self.get(ref)
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition}")
        with c.lock:
            generation = c.exit_count

        def block() -> dict[str, Any]:
            with c.lock:
                if condition == "removed":
                    c.changed.wait_for(lambda: c.removed)
                elif condition == "next-exit":
                    c.changed.wait_for(lambda: c.exit_count != generation or c.removed)
                else:
                    c.changed.wait_for(lambda: not c.running or c.removed)
                error = c.state.get("Error") or ""
                return {"StatusCode": c.state["ExitCode"], "Error": {"Message": error} if error else None}

        return block

    # ------------------------------------------------------------------ remove
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        with c.lock:
            if c.state["Status"] == "removing" and not force:
                raise Conflict(f"removal of container {c.id} is already in progress")
            if c.running:
                if not force:
                    raise Conflict(
                        f'cannot remove container "{c.name}": container is running: stop the container '
                        "before removing or force remove"
                    )
                self._stop(c, 0, "SIGKILL")
        self._remove_now(c, volumes)

    def _remove_now(self, c: Container, volumes: bool = False) -> None:
        with c.lock:
            if c.removed:
                return
            if c.running:  # --rm raced with a restart; leave it
                return
            c.state["Status"] = "removing"
            c.save(durable=False)
            self._release_network(c)
            self._unmount(c)
            try:
                self.snapshotter.remove(c.id)
            except Exception as exc:
                c.state["Status"] = "dead"
                c.state["Dead"] = True
                c.save()
                raise DockyardError(f"unable to remove filesystem for {c.id}: {exc}") from exc
            shutil.rmtree(c.dir, ignore_errors=True)
            c.removed = True
            c.changed.notify_all()
        with self._lock:
            self._containers.pop(c.id, None)
            if self._names.get(c.name) == c.id:
                del self._names[c.name]
        if self.volumes is not None:  # --rm removes anonymous volumes too, as docker does
            self.volumes.release(c.id, c.record.get("Mounts") or (), volumes or bool(c.host_config.get("AutoRemove")))
        self._event(c, "destroy")

    # ------------------------------------------------------------------ rename
    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        full = validate_name(new_name)
        with self._lock:
            if full == c.name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            if full in self._names:
                raise Conflict(
                    f'Conflict. The container name "{full}" is already in use by container "{self._names[full]}". '
                    "You have to remove (or rename) that container to be able to reuse that name."
                )
            old = c.name
            del self._names[old]
            self._names[full] = c.id
            with c.lock:
                c.record["Name"] = full
                c.save()
        self._event(c, "rename", oldName=old)

    # ------------------------------------------------------------------ list / inspect
    def list(
        self, all_: bool = False, limit: int = -1, size: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[dict[str, Any]]:
        from dockyard.daemon.filters import container_matches

        items = sorted(self.all(), key=lambda c: c.record["Created"], reverse=True)
        if limit and limit > 0:
            all_ = True
        out = []
        for c in items:
            if not all_ and not c.running:
                continue
            if filters and not container_matches(c, filters, self):
                continue
            out.append(c.summary(self._sizes(c) if size else None))
            if limit and limit > 0 and len(out) >= limit:
                break
        return out

    def _sizes(self, c: Container) -> dict[str, int]:
        try:
            rw = self.snapshotter.snapshot_size(c.id)
        except Exception:
            rw = 0
        try:
            image_size = self.images.resolve(c.record["Image"]).size
        except Exception:
            image_size = 0
        return {"SizeRw": rw, "SizeRootFs": rw + image_size}

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        c = self.get(ref)
        with c.lock:
            record = dict(c.record)
            record.pop("HasBeenManuallyStopped", None)  # daemon bookkeeping, not part of docker's shape
            record["GraphDriver"] = {"Name": self.snapshotter.name, "Data": None}
            if size:
                record.update(self._sizes(c))
            return record

    # ------------------------------------------------------------------ logs
    def logs(
        self,
        ref: str,
        *,
        stdout: bool,
        stderr: bool,
        follow: bool,
        since: float,
        until: float | None,
        tail: int | None,
        timestamps: bool,
    ) -> tuple[Container, Iterator[tuple[int, bytes]]]:
        """Return (container, iterator of (stream, payload)); stream 1 stdout, 2 stderr."""
        from dockyard.runtime.jsonlog import read_log

        c = self.get(ref)
        if (c.host_config.get("LogConfig") or {}).get("Type") not in READABLE_DRIVERS:
            raise InvalidParameter("configured logging driver does not support reading")

        def gen() -> Iterator[tuple[int, bytes]]:
            for entry in read_log(
                str(c.log_path),
                stdout=stdout,
                stderr=stderr,
                since=since,
                until=until,
                tail=tail,
                follow=follow,
                is_running=lambda: c.running and not c.removed,
            ):
                stream = 2 if entry.stream == "stderr" else 1
                data = entry.data
                if timestamps:
                    data = entry.time_str.encode() + b" " + data
                yield stream, data

        return c, gen()

    # ------------------------------------------------------------------ export
    def export(self, ref: str) -> Iterator[bytes]:
        from dockyard.image.layer import write_tree_tar

        c = self.get(ref)
        return _stream_writer(lambda out: self._with_rootfs(c, lambda root: write_tree_tar(root, out)))

    def _with_rootfs(self, c: Container, fn: Callable[[str], None], readonly: bool = True) -> None:
        """Run fn on the merged root, mounting it for the duration when the container is stopped."""
        with c.lock:
            mounted_here = not os.path.ismount(c.rootfs)
            if mounted_here:
                self.snapshotter.mount(c.id, str(c.rootfs), readonly=readonly)
        try:
            fn(str(c.rootfs))
        finally:
            if mounted_here:
                with c.lock:
                    if not c.running:
                        self._unmount(c)

    # ------------------------------------------------------------------ events
    def _event(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.config.get("Image", ""), "name": c.name.lstrip("/")}
        attrs.update({k: v for k, v in (c.config.get("Labels") or {}).items()})
        attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)

    def shutdown(self) -> None:
        """Daemon shutdown: leave containers running (their monitors outlive us)."""


def _start_error(message: str) -> str:
    """Docker's wording around a runtime error, which scripts and the CLI's exit codes rely on."""
    if "failed to create task" in message:
        return message
    if not message.startswith("OCI runtime"):
        message = f"OCI runtime create failed: {message}"
    if not message.endswith(": unknown") and not message.endswith(": unknown."):
        message += ": unknown"
    return f"failed to create task for container: failed to create shim task: {message}"


def _stream_writer(produce: Callable[[Any], None]) -> Iterator[bytes]:
    """Turn a function that writes into a file object into an iterator of chunks (via a pipe thread)."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        with os.fdopen(write_fd, "wb", buffering=1 << 16) as out:
            try:
                produce(out)
            except BrokenPipeError:
                pass
            except BaseException as exc:
                errors.append(exc)
                log.exception("stream producer failed")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as src:
            while chunk := src.read(1 << 16):
                yield chunk
    finally:
        thread.join(timeout=5)
    if errors:
        raise errors[0]

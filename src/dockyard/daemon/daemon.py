"""Wires the services together, restores state at start and serves the Engine API."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from dockyard.api.http import TCPAPIServer, UnixAPIServer
from dockyard.api.router import Router
from dockyard.daemon.archive import ArchiveService
from dockyard.daemon.container_ops import ContainerOps
from dockyard.daemon.containers import ContainerService
from dockyard.daemon.events import EventBus
from dockyard.daemon.images import ImageService
from dockyard.errors import DockyardError
from dockyard.util.ids import new_id

log = logging.getLogger("dockyard.daemon")

DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"


class Daemon:
    def __init__(
        self,
        data_root: str = DEFAULT_DATA_ROOT,
        exec_root: str = DEFAULT_EXEC_ROOT,
        storage_driver: str = "auto",
        default_runtime: str = "builtin",
        insecure_registries: tuple[str, ...] = (),
        max_concurrent_downloads: int = 3,
        bip: str = "",
    ) -> None:
        from dockyard.image.store import ImageStore
        from dockyard.storage import open_snapshotter

        self.data_root = Path(data_root)
        self.exec_root = Path(exec_root)
        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.exec_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self._lock_fd = self._take_lock()
        self.engine_id = self._engine_id()
        self.events = EventBus()
        self.snapshotter = open_snapshotter(str(self.data_root / "storage"), storage_driver)
        self.images = ImageStore(str(self.data_root), self.snapshotter)
        from dockyard.daemon.volumes import VolumeService

        self.volumes = VolumeService(self.data_root / "volumes", self.events)
        self.containers = ContainerService(
            self.data_root / "containers",
            self.exec_root,
            self.images,
            self.snapshotter,
            self.events,
            default_runtime,
            volumes=self.volumes,
        )
        self.volumes.containers = self.containers
        from dockyard.daemon.networks import NetworkService

        self.networks = NetworkService(self.data_root, self.exec_root, bip)
        self.networks.attach_containers(self.containers)
        self.containers.networks = self.networks
        self.image_service = ImageService(self.images, self.containers, self.events)
        self.container_ops = ContainerOps(self.containers, self.image_service)
        from dockyard.daemon.execs import ExecService
        from dockyard.daemon.health import HealthMonitor

        self.execs = ExecService(self.containers)
        self.containers.health = HealthMonitor(self.containers, self.execs)
        self.containers.exit_listeners.append(self.containers.health.stop)
        self.archive = ArchiveService(self.containers)
        from dockyard.daemon.distribution import DistributionService

        self.distribution = DistributionService(
            self.images,
            self.events,
            self.data_root,
            insecure_registries=insecure_registries,
            max_concurrent_downloads=max_concurrent_downloads,
        )
        self.router = self._build_router()
        self._servers: list[Any] = []

    def _take_lock(self) -> int:
        """One daemon per data root: a second one would corrupt the state."""
        fd = os.open(self.data_root / "dockyard.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DockyardError(f"another dockyard daemon is using {self.data_root}") from None
        return fd

    def _engine_id(self) -> str:
        path = self.data_root / "engine-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            from dockyard.util.fs import atomic_write

            value = new_id()
            atomic_write(path, value.encode())
            return value

    def _build_router(self) -> Router:
        from dockyard.api import (
            build,
            container_ops,
            containers,
            distribution,
            execs,
            images,
            networks,
            system,
            volumes,
        )

        router = Router()
        system.register(router, self)
        containers.register(router, self)
        images.register(router, self)
        distribution.register(router, self)
        execs.register(router, self)
        volumes.register(router, self)
        networks.register(router, self)
        container_ops.register(router, self)
        build.register(router, self)
        return router

    # ------------------------------------------------------------------ attach glue
    def attach_session(self, c: Any, session: Any) -> None:
        """Connect now when running, or when the container starts (attach-before-start)."""
        with c.lock:
            if c.running and c.monitor is not None:
                session.connect(c.monitor)
            else:
                c.pending_attach.append(session)

    # ------------------------------------------------------------------ serve
    def restore(self) -> None:
        import shutil

        for leftover in (self.data_root / "tmp").glob("build-*"):  # contexts of builds a crash interrupted
            shutil.rmtree(leftover, ignore_errors=True)
        self.networks.load()
        self.containers.restore()
        self.networks.restore()

    def listen(self, hosts: list[str]) -> None:
        from dockyard.api.system import common_headers

        headers = common_headers()
        for host in hosts:
            if host.startswith("unix://"):
                server: Any = UnixAPIServer(host[len("unix://") :], self.router.dispatch, headers)
            elif host.startswith("tcp://"):
                addr, _, port = host[len("tcp://") :].rpartition(":")
                server = TCPAPIServer((addr or "127.0.0.1", int(port or 2375)), self.router.dispatch, headers)
            elif host.startswith("fd://"):
                raise DockyardError("fd:// hosts (socket activation) are not supported")
            else:
                raise DockyardError(f"invalid host: {host}")
            self._servers.append(server)

    def serve_forever(self) -> None:
        threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]
        for t in threads:
            t.start()
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            log.info("signal %d: shutting down (containers keep running)", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        stop.wait()
        self.close()

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
            path = getattr(server, "server_address", None)
            if isinstance(path, str) and os.path.exists(path):
                os.unlink(path)
        self._servers.clear()
        from dockyard.runtime import zygote_client

        zygote_client.shutdown()
        self.networks.shutdown()
        _remove_empty_cgroup_parents()
        os.close(self._lock_fd)


def _remove_empty_cgroup_parents() -> None:
    """Leave no empty `dockyard` cgroup behind; rmdir refuses while any container still has one."""
    import contextlib
    import glob

    for path in glob.glob("/sys/fs/cgroup/dockyard") + glob.glob("/sys/fs/cgroup/*/dockyard"):
        with contextlib.suppress(OSError):
            os.rmdir(path)

"""Compose orchestration over the Engine API: the project's networks, volumes, images and containers.

Everything goes through the one API client (client/api.py), as docker compose v2 talks to dockerd:
resources carry compose's labels (com.docker.compose.project, .service, .container-number, ...), so
`ps`/`down` find them again and the docker CLI sees the same project. Containers are named
`<project>-<service>-<n>`, created in dependency order, and kept when their configuration hash is
unchanged (`up` is idempotent) or recreated when it changed. depends_on conditions are honoured:
service_started, service_healthy (health checks) and service_completed_successfully.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dockyard.client.errors import APIError
from dockyard.compose.model import ComposeError, service_order

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
WORKING_DIR = "com.docker.compose.project.working_dir"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
DEPENDENCY_TIMEOUT = 300.0

Say = Callable[[str], None]


class Compose:
    def __init__(self, client: Any, project: dict[str, Any], say: Say, profiles: list[str] | None = None) -> None:
        self.client = client
        self.project = project
        self.profiles = set(profiles or [])
        self.name = project["name"]
        self.say = say

    # ------------------------------------------------------------------ queries
    def containers(self, service: str | None = None, all: bool = True) -> list[dict[str, Any]]:
        """The project's containers (docker's summaries), by service then number."""
        labels = [f"{PROJECT}={self.name}", f"{ONEOFF}=False"]
        if service:
            labels.append(f"{SERVICE}={service}")
        found = self.client.containers(all=all, filters={"label": labels})
        return sorted(found, key=lambda c: (c["Labels"].get(SERVICE, ""), int(c["Labels"].get(NUMBER, "0") or 0)))

    def _selected(self, services: list[str] | None) -> list[str]:
        order = service_order(self.project)
        for name in services or []:
            if name not in self.project["services"]:
                raise ComposeError(f"no such service: {name}")
        if not services:  # services of an inactive profile only run when named
            return [s for s in order if self._active(s)]
        wanted = set(services)
        for name in reversed(order):  # and what they depend on
            if name in wanted:
                wanted |= set(self.project["services"][name].get("depends_on") or {})
        return [s for s in order if s in wanted]

    def _active(self, service: str) -> bool:
        profiles = self.project["services"][service].get("profiles") or []
        return not profiles or bool(self.profiles & set(profiles))

    # ------------------------------------------------------------------ up
    def up(self, services: list[str] | None = None, build: bool = False, force_recreate: bool = False) -> list[str]:
        """Create what is missing, recreate what changed, start everything; returns the container names."""
        selected = self._selected(services)
        self._ensure_networks()
        self._ensure_volumes()
        started: list[str] = []
        for name in selected:
            service = self.project["services"][name]
            self._wait_for_dependencies(name, service)
            image = self._ensure_image(name, service, build)
            for number in range(1, int(service.get("replicas", 1)) + 1):
                started.append(self._converge(name, service, number, image, force_recreate))
        return started

    def one_off(
        self,
        name: str,
        command: list[str] | None,
        *,
        env: list[str] | None = None,
        entrypoint: list[str] | None = None,
        user: str = "",
        workdir: str = "",
        tty: bool = False,
        interactive: bool = False,
        remove: bool = False,
        with_dependencies: bool = True,
    ) -> tuple[str, dict[str, Any]]:
        """`compose run`: the service's configuration for a one-off container (no published ports,
        oneoff=True), after its dependencies are up; returns (container id, create body)."""
        if name not in self.project["services"]:
            raise ComposeError(f"no such service: {name}")
        service = dict(self.project["services"][name])
        dependencies = list(service.get("depends_on") or {})
        if with_dependencies and dependencies:
            self.up(dependencies)
            self._wait_for_dependencies(name, service)
        else:
            self._ensure_networks()
            self._ensure_volumes()
        image = self._ensure_image(name, service, False)
        service["ports"] = []  # docker compose run publishes nothing unless asked (--service-ports)
        body = self._create_body(name, service, 1, image)
        body["Labels"][ONEOFF] = "True"
        body["Labels"].pop(NUMBER, None)
        if command:
            body["Cmd"] = command
        if entrypoint is not None:
            body["Entrypoint"] = entrypoint
        body["Env"] = [*body["Env"], *(env or [])]
        body.update({k: v for k, v in (("User", user), ("WorkingDir", workdir)) if v})
        body.update(Tty=tty, OpenStdin=interactive, StdinOnce=interactive, AttachStdin=interactive,
                    AttachStdout=True, AttachStderr=True)  # fmt: skip
        body["HostConfig"]["AutoRemove"] = remove
        body["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
        container = self.client.create_container(body, name=f"{self.name}-{name}-run-{os.urandom(6).hex()}")
        self._connect_extra_networks(container["Id"], name, service)
        return container["Id"], body

    def _ensure_networks(self) -> None:
        existing = {n["Name"] for n in self.client.networks()}
        for key, net in self.project.get("networks", {}).items():
            if not self._network_used(key):
                continue
            if net.get("external"):
                if net["name"] not in existing:
                    raise ComposeError(f"network {net['name']} declared as external, but could not be found")
                continue
            if net["name"] in existing:
                continue
            body: dict[str, Any] = {
                "Name": net["name"],
                "Driver": net.get("driver") or "bridge",
                "Internal": bool(net.get("internal")),
                "Labels": {**(net.get("labels") or {}), PROJECT: self.name, NETWORK: key},
            }
            configs = ((net.get("ipam") or {}).get("config")) or []
            if configs:
                body["IPAM"] = {"Config": [{"Subnet": c.get("subnet", ""), "Gateway": c.get("gateway", "")}
                                           for c in configs]}  # fmt: skip
            self.client.create_network(body)
            self.say(f" Network {net['name']}  Created")

    def _network_used(self, key: str) -> bool:
        return any(key in (s.get("networks") or {}) for s in self.project["services"].values())

    def _ensure_volumes(self) -> None:
        existing = {v["Name"] for v in self.client.volumes().get("Volumes") or []}
        for key, vol in self.project.get("volumes", {}).items():
            if vol["name"] in existing:
                continue
            if vol.get("external"):
                raise ComposeError(f'external volume "{vol["name"]}" not found')
            self.client.create_volume(
                vol["name"],
                vol.get("driver") or "local",
                vol.get("driver_opts") or {},
                {**(vol.get("labels") or {}), PROJECT: self.name, VOLUME: key},
            )
            self.say(f" Volume {vol['name']}  Created")

    def _ensure_image(self, name: str, service: dict[str, Any], build: bool) -> str:
        image = service.get("image") or f"{self.name}-{name}"
        if service.get("build") and (build or not self._image_exists(image)):
            self.build_service(name, service, image)
        elif not self._image_exists(image):
            self.say(f" {name} Pulling")
            response = self.client.pull_image(image)
            for message in response.iter_json():
                if message.get("error"):
                    raise ComposeError(message["error"])
        return image

    def _image_exists(self, image: str) -> bool:
        try:
            self.client.inspect_image(image)
            return True
        except APIError as exc:
            if exc.status == 404:
                return False
            raise

    def build_service(self, name: str, service: dict[str, Any], image: str) -> None:
        """`compose build`: the service's build context through the daemon's builder."""
        import tempfile

        from dockyard.build.context import ContextError, write_context

        spec = service["build"]
        self.say(f" {name} Building")
        with tempfile.TemporaryFile() as context:
            try:
                dockerfile = write_context(context, spec["context"], spec.get("dockerfile") or "")
            except ContextError as exc:
                raise ComposeError(f"failed to build {name}: {exc}") from None
            context.seek(0)
            params = {
                "t": [image],
                "dockerfile": dockerfile,
                "buildargs": json.dumps({k: v for k, v in (spec.get("args") or {}).items()}) or None,
                "target": spec.get("target") or None,
                "labels": json.dumps(spec.get("labels") or {}) if spec.get("labels") else None,
                "rm": True,
            }
            for message in self.client.build(context, params).iter_json():
                if message.get("error"):
                    raise ComposeError(f"failed to build {name}: {message['error']}")
                if message.get("stream"):
                    self.say(message["stream"].rstrip("\n"))
        self.say(f" {name} Built")

    def _converge(self, name: str, service: dict[str, Any], number: int, image: str, force: bool) -> str:
        container_name = service.get("container_name") or f"{self.name}-{name}-{number}"
        body = self._create_body(name, service, number, image)
        digest = hashlib.sha256(json.dumps([body, self._image_id(image)], sort_keys=True).encode()).hexdigest()
        body["Labels"][CONFIG_HASH] = digest
        current = next((c for c in self.containers(name) if c["Labels"].get(NUMBER) == str(number)), None)
        if current is not None and (force or current["Labels"].get(CONFIG_HASH) != digest):
            self.client.remove_container(current["Id"], force=True)
            self.say(f" Container {container_name}  Recreated")
            current = None
        if current is None:
            created = self.client.create_container(body, name=container_name)
            self._connect_extra_networks(created["Id"], name, service)
            self.say(f" Container {container_name}  Created")
            cid = created["Id"]
        else:
            cid = current["Id"]
            if current["State"] == "running":
                self.say(f" Container {container_name}  Running")
                return container_name
        self.client.start_container(cid)
        self.say(f" Container {container_name}  Started")
        return container_name

    def _image_id(self, image: str) -> str:
        return self.client.inspect_image(image)["Id"]

    def _networks_of(self, service: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        nets = self.project.get("networks", {})
        return [(nets[key]["name"], cfg or {}) for key, cfg in (service.get("networks") or {}).items()]

    def _connect_extra_networks(self, cid: str, name: str, service: dict[str, Any]) -> None:
        for real, cfg in self._networks_of(service)[1:]:
            self.client.connect_network(real, cid, _endpoint(name, cfg))

    def _create_body(self, name: str, service: dict[str, Any], number: int, image: str) -> dict[str, Any]:
        """The Engine API create body for one of the service's containers (docker compose's mapping)."""
        env = [f"{k}={v}" for k, v in (service.get("environment") or {}).items() if v is not None]
        exposed = {(p if "/" in str(p) else f"{p}/tcp"): {} for p in service.get("expose") or []}
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in service.get("ports") or []:
            key = f"{port['target']}/{port.get('protocol') or 'tcp'}"
            exposed[key] = {}
            bindings.setdefault(key, []).append(
                {"HostIp": port.get("host_ip") or "", "HostPort": str(port.get("published") or "")}
            )
        host: dict[str, Any] = {
            "PortBindings": bindings,
            "Mounts": [self._mount(m) for m in service.get("volumes") or []],
            "Tmpfs": {path: "" for path in service.get("tmpfs") or []},
            "RestartPolicy": _restart_policy(service.get("restart") or "no"),
            "NetworkMode": self._network_mode(service),
            "ExtraHosts": service.get("extra_hosts") or None,
            "Dns": service.get("dns") or None,
            "DnsSearch": service.get("dns_search") or None,
            "CapAdd": service.get("cap_add") or None,
            "CapDrop": service.get("cap_drop") or None,
            "Privileged": bool(service.get("privileged")),
            "ReadonlyRootfs": bool(service.get("read_only")),
            "PidMode": service.get("pid") or "",
            "IpcMode": service.get("ipc") or "",
            "GroupAdd": service.get("group_add") or None,
            "SecurityOpt": service.get("security_opt") or None,
            "Sysctls": service.get("sysctls") or None,
        }
        if service.get("init"):
            host["Init"] = True
        optional = {
            "ShmSize": service.get("shm_size"),
            "Memory": service.get("mem_limit"),
            "NanoCpus": int(float(service["cpus"]) * 1e9) if service.get("cpus") else None,
            "PidsLimit": service.get("pids_limit"),
        }
        host.update({k: v for k, v in optional.items() if v})
        if service.get("ulimits"):
            host["Ulimits"] = [{"Name": k, "Soft": v["soft"], "Hard": v["hard"]} for k, v in service["ulimits"].items()]
        if service.get("devices"):
            from dockyard.cli.run import parse_device

            host["Devices"] = [parse_device(d) for d in service["devices"]]
        if (service.get("logging") or {}).get("driver"):
            host["LogConfig"] = {
                "Type": service["logging"]["driver"],
                "Config": service["logging"].get("options") or {},
            }
        body: dict[str, Any] = {
            "Image": image,
            "Cmd": service.get("command"),
            "Entrypoint": service.get("entrypoint"),
            "Env": env,
            "Labels": {
                **(service.get("labels") or {}),
                PROJECT: self.name,
                SERVICE: name,
                NUMBER: str(number),
                ONEOFF: "False",
                WORKING_DIR: self.project.get("working_dir", ""),
            },
            "WorkingDir": service.get("working_dir") or "",
            "User": service.get("user") or "",
            "Hostname": service.get("hostname") or "",
            "Domainname": service.get("domainname") or "",
            "Tty": bool(service.get("tty")),
            "OpenStdin": bool(service.get("stdin_open")),
            "ExposedPorts": exposed or None,
            "HostConfig": host,
        }
        if service.get("stop_signal"):
            body["StopSignal"] = service["stop_signal"]
        if service.get("stop_grace_period") is not None:
            body["StopTimeout"] = int(service["stop_grace_period"])
        if service.get("healthcheck"):
            body["Healthcheck"] = service["healthcheck"]
        networks = self._networks_of(service)
        if networks and not service.get("network_mode"):
            real, cfg = networks[0]
            body["NetworkingConfig"] = {"EndpointsConfig": {real: _endpoint(name, cfg)}}
        return body

    def _network_mode(self, service: dict[str, Any]) -> str:
        mode = service.get("network_mode") or ""
        if mode.startswith("service:"):
            other = self.containers(mode.partition(":")[2])
            if not other:
                raise ComposeError(f"service {mode.partition(':')[2]} has no container to share the network of")
            return f"container:{other[0]['Id']}"
        if mode:
            return mode
        networks = self._networks_of(service)
        return networks[0][0] if networks else "default"

    def _mount(self, volume: dict[str, Any]) -> dict[str, Any]:
        mount: dict[str, Any] = {
            "Type": volume["type"],
            "Target": volume["target"],
            "ReadOnly": bool(volume.get("read_only")),
        }
        source = volume.get("source") or ""
        if volume["type"] == "volume" and source:
            source = self.project["volumes"][source]["name"]
        if source:
            mount["Source"] = source
        return mount

    # ------------------------------------------------------------------ depends_on
    def _wait_for_dependencies(self, name: str, service: dict[str, Any]) -> None:
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = (spec or {}).get("condition") or "service_started"
            for container in self.containers(dependency):
                self._wait_for(container, condition)

    def _wait_for(self, container: dict[str, Any], condition: str) -> None:
        cname = container["Names"][0].lstrip("/")
        deadline = time.monotonic() + DEPENDENCY_TIMEOUT
        while True:
            state = self.client.inspect_container(container["Id"])["State"]
            if condition == "service_healthy":
                health = (state.get("Health") or {}).get("Status")
                if health is None:
                    raise ComposeError(f"dependency failed to start: container {cname} has no healthcheck configured")
                if health == "healthy":
                    return
                if health == "unhealthy":
                    raise ComposeError(f"dependency failed to start: container {cname} is unhealthy")
            elif condition == "service_completed_successfully":
                if not state["Running"]:
                    if state["ExitCode"] != 0:
                        service = container["Labels"].get(SERVICE, cname)
                        raise ComposeError(
                            f'service "{service}" didn\'t complete successfully: exit {state["ExitCode"]}'
                        )
                    return
            else:
                return
            if time.monotonic() > deadline:
                raise ComposeError(f"timed out waiting for {cname} ({condition})")
            time.sleep(0.1)

    def wait_ready(self, services: list[str] | None = None, timeout: float = DEPENDENCY_TIMEOUT) -> None:
        """`up --wait`: every container running, and healthy when it has a health check (one-shot
        services others wait to complete successfully are done, not failed, when they exit 0)."""
        one_shot = {dep for s in self.project["services"].values() for dep, spec in (s.get("depends_on") or {}).items()
                    if (spec or {}).get("condition") == "service_completed_successfully"}  # fmt: skip
        deadline = time.monotonic() + timeout
        for container in self._of(services):
            cname = container["Names"][0].lstrip("/")
            if container["Labels"].get(SERVICE) in one_shot and container["State"] != "running":
                continue
            while True:
                state = self.client.inspect_container(container["Id"])["State"]
                health = (state.get("Health") or {}).get("Status")
                if not state["Running"]:
                    raise ComposeError(f"container {cname} exited ({state['ExitCode']})")
                if health == "unhealthy":
                    raise ComposeError(f"container {cname} is unhealthy")
                if health in (None, "healthy"):
                    self.say(f" Container {cname}  {'Healthy' if health else 'Running'}")
                    break
                if time.monotonic() > deadline:
                    raise ComposeError(f"timed out waiting for {cname} to be healthy")
                time.sleep(0.1)

    def pull(self, services: list[str] | None = None) -> None:
        """`compose pull`: the image of every selected service that names one."""
        for name in self._selected(services):
            image = self.project["services"][name].get("image")
            if not image:
                continue
            self.say(f" {name} Pulling")
            for message in self.client.pull_image(image).iter_json():
                if message.get("error"):
                    raise ComposeError(message["error"])
            self.say(f" {name} Pulled")

    # ------------------------------------------------------------------ down / stop / start
    def down(self, volumes: bool = False, timeout: int | None = None) -> None:
        order = service_order(self.project)
        containers = self.containers()
        by_service = sorted(containers, key=lambda c: -order.index(c["Labels"][SERVICE])
                            if c["Labels"].get(SERVICE) in order else 0)  # fmt: skip
        for container in by_service:
            cname = container["Names"][0].lstrip("/")
            if container["State"] == "running":
                self.client.stop_container(container["Id"], timeout=timeout)
                self.say(f" Container {cname}  Stopped")
            self.client.remove_container(container["Id"], force=True)
            self.say(f" Container {cname}  Removed")
        for net in self.client.networks(filters={"label": [f"{PROJECT}={self.name}"]}):
            self.client.remove_network(net["Id"])
            self.say(f" Network {net['Name']}  Removed")
        if volumes:
            for vol in self.client.volumes(filters={"label": [f"{PROJECT}={self.name}"]}).get("Volumes") or []:
                self.client.remove_volume(vol["Name"])
                self.say(f" Volume {vol['Name']}  Removed")

    def stop(self, services: list[str] | None = None, timeout: int | None = None) -> None:
        for container in self._of(services):
            if container["State"] == "running":
                self.client.stop_container(container["Id"], timeout=timeout)
                self.say(f" Container {container['Names'][0].lstrip('/')}  Stopped")

    def start(self, services: list[str] | None = None) -> None:
        for container in self._of(services):
            if container["State"] != "running":
                self.client.start_container(container["Id"])
                self.say(f" Container {container['Names'][0].lstrip('/')}  Started")

    def _of(self, services: list[str] | None) -> list[dict[str, Any]]:
        return [c for c in self.containers() if not services or c["Labels"].get(SERVICE) in services]

    # ------------------------------------------------------------------ logs
    def log_lines(
        self, services: list[str] | None, follow: bool, tail: str, until_first_exit: bool = False
    ) -> Iterator[str]:
        """`compose logs`: every container's lines prefixed with its name, as they come; with
        `until_first_exit`, the stream ends when the first container's output ends (it exited)."""
        import queue

        containers = self._of(services)
        if not containers:
            return
        width = max(len(c["Names"][0].lstrip("/")) for c in containers)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(container: dict[str, Any]) -> None:
            prefix = container["Names"][0].lstrip("/").ljust(width) + "  | "
            try:
                response = self.client.logs(container["Id"], follow=follow, tail=tail)
                pending = b""
                for _stream, data in response.iter_output(bool(container.get("Config", {}).get("Tty"))):
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        lines.put(prefix + line.decode(errors="replace"))
                if pending:
                    lines.put(prefix + pending.decode(errors="replace"))
            except APIError:
                pass
            finally:
                lines.put(None)

        for container in containers:
            threading.Thread(target=pump, args=(container,), daemon=True).start()
        remaining = len(containers)
        while remaining:
            line = lines.get()
            if line is None:
                remaining -= 1
                if until_first_exit:
                    return
            else:
                yield line

    def exit_code(self, service: str | None = None) -> int:
        """The exit code `up --abort-on-container-exit` returns: the named service's container's, else
        the first non-zero one among the exited containers (0 when none failed)."""
        codes = []
        for container in self._of([service] if service else None):
            state = self.client.inspect_container(container["Id"])["State"]
            if not state["Running"]:
                codes.append(int(state["ExitCode"]))
        return next((c for c in codes if c), 0) if not service else (codes[0] if codes else 0)


def _endpoint(service: str, cfg: dict[str, Any]) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"Aliases": [service, *(cfg.get("aliases") or [])]}
    if cfg.get("ipv4_address"):
        endpoint["IPAMConfig"] = {"IPv4Address": cfg["ipv4_address"]}
    return endpoint


def _restart_policy(value: str) -> dict[str, Any]:
    name, _, count = value.partition(":")
    return {"Name": name or "no", "MaximumRetryCount": int(count) if count else 0}

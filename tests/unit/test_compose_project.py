"""How a compose service becomes an Engine API create body, and which services `up` selects."""

from __future__ import annotations

from pathlib import Path

from dockyard.compose.model import load_project
from dockyard.compose.project import NUMBER, PROJECT, SERVICE, Compose

COMPOSE = """\
name: demo
services:
  web:
    image: busybox
    command: httpd -f -p 80
    environment: {A: "1", B: null}
    ports: ["127.0.0.1:8080:80", "53:53/udp"]
    volumes: ["data:/data:ro", "./site:/www", "/scratch"]
    networks: {front: {aliases: [www]}, back: {}}
    healthcheck: {test: "wget -q localhost", interval: 5s, retries: 2}
    restart: on-failure:3
    init: true
    stop_grace_period: 20s
  debug:
    image: busybox
    profiles: [tools]
networks: {front: {}, back: {}}
volumes: {data: {}}
"""


def _project(tmp_path: Path) -> dict:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    return load_project([str(tmp_path / "compose.yaml")], environ={})


def test_create_body(tmp_path: Path) -> None:
    project = _project(tmp_path)
    body = Compose(None, project, print)._create_body("web", project["services"]["web"], 1, "busybox")
    assert body["Cmd"] == ["httpd", "-f", "-p", "80"] and body["Env"] == ["A=1"]
    assert body["Labels"][PROJECT] == "demo" and body["Labels"][SERVICE] == "web" and body["Labels"][NUMBER] == "1"
    host = body["HostConfig"]
    assert host["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": "53"}],
    }
    assert {"Type": "volume", "Target": "/data", "ReadOnly": True, "Source": "demo_data"} in host["Mounts"]
    assert {"Type": "bind", "Target": "/www", "ReadOnly": False, "Source": str(tmp_path / "site")} in host["Mounts"]
    assert {"Type": "volume", "Target": "/scratch", "ReadOnly": False} in host["Mounts"]  # anonymous
    assert host["NetworkMode"] in ("demo_back", "demo_front")  # the first of its networks
    endpoints = body["NetworkingConfig"]["EndpointsConfig"]
    assert list(endpoints) == [host["NetworkMode"]] and "web" in next(iter(endpoints.values()))["Aliases"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3} and host["Init"] is True
    assert body["StopTimeout"] == 20 and body["Healthcheck"]["Test"] == ["CMD-SHELL", "wget -q localhost"]
    assert body["Healthcheck"]["Interval"] == 5_000_000_000


def test_profiles_select_services(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert Compose(None, project, print)._selected(None) == ["web"]
    assert Compose(None, project, print, profiles=["tools"])._selected(None) == ["debug", "web"]
    assert Compose(None, project, print)._selected(["debug"]) == ["debug"]  # named: runs whatever its profile

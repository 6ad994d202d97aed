"""`dockyard compose` end to end: build, networks with service-name DNS, volumes, published ports,
depends_on conditions (healthy, completed), idempotent `up`, recreate on change, logs, exec, down -v.

Traffic goes only to loopback (the published port) and to the containers the test creates.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from pathlib import Path

import pytest

COMPOSE = """\
name: ${PROJECT}
services:
  seed:
    image: busybox
    command: ["sh", "-c", "echo seeding; echo seeded > /data/seed.txt"]
    volumes:
      - shared:/data
  db:
    image: busybox
    command: sh -c 'mkdir -p /www && cp /data/seed.txt /www/index.html && exec httpd -f -p 80 -h /www'
    volumes:
      - shared:/data
    depends_on:
      seed:
        condition: service_completed_successfully
    healthcheck:
      test: test -f /www/index.html
      interval: 200ms
      retries: 20
  web:
    build: ./web
    environment:
      UPSTREAM: http://db/index.html
      GREETING: ${GREETING:-hello}
    ports:
      - "127.0.0.1:${WEB_PORT}:80"
    depends_on:
      db:
        condition: service_healthy
volumes:
  shared:
"""

WEB_DOCKERFILE = """\
FROM busybox
RUN mkdir /www && echo "web says hi" > /www/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def project(dy, tmp_path: Path):  # type: ignore[no-untyped-def]
    name = f"cp{uuid.uuid4().hex[:8]}"
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    port = _free_port()
    (tmp_path / ".env").write_text(f"PROJECT={name}\nWEB_PORT={port}\n")

    def compose(*args: str, **kw):  # type: ignore[no-untyped-def]
        return dy.cli("compose", "--project-directory", str(tmp_path), *args, timeout=180, **kw)

    try:
        yield name, port, compose, tmp_path
    finally:
        compose("down", "-v")
        dy.cli("rmi", "-f", f"{name}-web")


def test_up_ps_logs_exec_recreate_and_down(dy, project) -> None:  # type: ignore[no-untyped-def]
    name, port, compose, directory = project
    up = compose("up", "--wait")  # detached, back once db is healthy and web running
    assert up.returncode == 0, up.stderr.decode()
    assert f"Container {name}-db-1  Healthy" in up.stderr.decode()
    log = up.stderr.decode()
    assert f"Network {name}_default  Created" in log and f"Volume {name}_shared  Created" in log
    assert f"Container {name}-web-1  Started" in log

    ps = compose("ps").stdout.decode()
    assert f"{name}-db-1" in ps and f"{name}-web-1" in ps and f"{name}-seed-1" not in ps  # seed exited
    assert f"{name}-seed-1" in compose("ps", "-a").stdout.decode()

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
        assert response.read() == b"web says hi\n"  # the published port, from the host's loopback
    via_dns = compose("exec", "-T", "web", "sh", "-c", "wget -qO- $UPSTREAM")
    assert via_dns.stdout == b"seeded\n", via_dns.stderr  # the db service by name, the seed's volume data

    again = compose("up", "-d").stderr.decode()
    assert f"Container {name}-web-1  Running" in again and "Recreated" not in again  # idempotent
    with open(directory / ".env", "a") as env_file:  # a changed service configuration: recreated
        env_file.write("GREETING=bonjour\n")
    changed = compose("up", "-d").stderr.decode()
    assert f"Container {name}-web-1  Recreated" in changed and f"Container {name}-db-1  Running" in changed
    env = json.loads(dy.out("inspect", "-f", "{{json .Config.Env}}", f"{name}-web-1"))
    assert "GREETING=bonjour" in env

    one_off = compose("run", "--rm", "-T", "web", "sh", "-c", "echo $GREETING; wget -qO- http://db/index.html")
    assert one_off.returncode == 0 and one_off.stdout == b"bonjour\nseeded\n", one_off.stderr
    assert compose("run", "--rm", "-T", "--no-deps", "web", "sh", "-c", "exit 7").returncode == 7
    assert not dy.out("ps", "-aq", "--filter", "label=com.docker.compose.oneoff=True").strip()  # --rm
    seed_logs = compose("logs", "seed").stdout.decode().splitlines()  # started again by each `up` (and run)
    assert set(seed_logs) == {f"{name}-seed-1  | seeding"} and len(seed_logs) >= 3
    labels = json.loads(dy.out("inspect", "-f", "{{json .Config.Labels}}", f"{name}-db-1"))
    assert labels["com.docker.compose.project"] == name and labels["com.docker.compose.service"] == "db"

    down = compose("down", "-v")
    assert down.returncode == 0, down.stderr.decode()
    assert not dy.out("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}").strip()
    assert name not in dy.out("network", "ls") and name not in dy.out("volume", "ls")


def test_config_and_errors(dy, project) -> None:  # type: ignore[no-untyped-def]
    _name, port, compose, directory = project
    config = compose("config").stdout.decode()
    assert "127.0.0.1" in config and str(port) in config and "service_healthy" in config
    assert set(compose("config", "--services").stdout.decode().split()) == {"seed", "db", "web"}
    (directory / "compose.yaml").write_text("services:\n  web:\n    depends_on: [db]\n    image: busybox\n")
    out = compose("up", "-d")
    assert out.returncode != 0 and b'depends on undefined service "db"' in out.stderr


def test_attached_up_aborts_on_container_exit_with_its_code(dy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = f"ca{uuid.uuid4().hex[:8]}"
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  sut:\n    image: busybox\n    command: sh -c 'sleep 0.5; echo checked; exit 3'\n"
        "  helper:\n    image: busybox\n    command: sleep 100\n    stop_grace_period: 1s\n"
    )

    def compose(*args: str):  # type: ignore[no-untyped-def]
        return dy.cli("compose", "--project-directory", str(tmp_path), "-p", name, *args, timeout=120)

    try:
        out = compose("up", "--exit-code-from", "sut")
        assert out.returncode == 3, out.stderr.decode()
        prefix, _, line = out.stdout.decode().strip().partition("|")
        assert prefix.strip() == f"{name}-sut-1" and line.strip() == "checked"
        states = dy.out("ps", "-a", "--filter", f"label=com.docker.compose.project={name}", "--format", "{{.State}}")
        assert "running" not in states  # the others were stopped
    finally:
        compose("down")


@pytest.mark.skipif(not Path("/usr/bin/docker-compose").exists(), reason="docker-compose (v1) is not installed")
def test_real_docker_compose_v1_works_unchanged(dy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The compose tool people already have (Debian's docker-compose 1.29, over docker-py) drives dockyard."""
    import os
    import subprocess

    name = f"v1{uuid.uuid4().hex[:8]}"
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text('FROM busybox\nCMD ["sh", "-c", "sleep 1000"]\n')
    (tmp_path / "docker-compose.yml").write_text(
        'version: "3.8"\nservices:\n'
        "  db:\n    image: busybox\n"
        "    command: sh -c 'mkdir -p /www && echo from-db > /www/index.html && exec httpd -f -p 80 -h /www'\n"
        "  web:\n    build: ./web\n    depends_on: [db]\n    volumes: [data:/data]\n"
        "volumes:\n  data:\n"
    )
    env = {**os.environ, "DOCKER_HOST": dy.host, "DOCKER_CONFIG": str(tmp_path / "cfg")}

    def compose(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker-compose", "-p", name, *args], cwd=tmp_path, env=env, capture_output=True,
                              timeout=180)  # fmt: skip

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr.decode()
        ps = compose("ps").stdout.decode()
        assert f"{name}_db_1" in ps and f"{name}_web_1" in ps and ps.count(" Up ") == 2
        fetched = compose("exec", "-T", "web", "wget", "-qO-", "http://db/index.html")
        assert fetched.stdout == b"from-db\n", fetched.stderr.decode()  # service names resolve
    finally:
        down = compose("down", "-v", "--rmi", "local")
        assert down.returncode == 0, down.stderr.decode()
    assert not dy.out("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}").strip()
    assert name not in dy.out("network", "ls") and name not in dy.out("volume", "ls")

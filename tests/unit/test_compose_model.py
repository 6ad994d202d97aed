"""The compose loader: interpolation, short/long syntaxes, merging, naming, validation, ordering."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from dockyard.compose.model import (
    ComposeError,
    dump,
    find_files,
    interpolate,
    load_project,
    parse_duration,
    parse_size,
    service_order,
)


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def load(directory: Path, text: str, environ: dict[str, str] | None = None, **kwargs) -> dict:
    path = write(directory, "compose.yaml", text)
    return load_project([path], environ=environ or {}, **kwargs)


def service(directory: Path, body: str, environ: dict[str, str] | None = None) -> dict:
    """Load a one-service project whose service body is `body` (indented under `web:`)."""
    text = "services:\n  web:\n" + textwrap.indent(textwrap.dedent(body), "    ")
    text += "volumes:\n  data: {}\nnetworks:\n  front: {}\n  back: {}\n"
    return load(directory, text, environ)["services"]["web"]


# ---------------------------------------------------------------------------------------------------------------
# Interpolation

ENV = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$SET", "value"),
        ("${SET}", "value"),
        ("pre-${SET}-post", "pre-value-post"),
        ("$SET.txt", "value.txt"),
        ("${UNSET}", ""),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${SET:-dflt}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET:?boom}", "value"),
        ("${EMPTY?boom}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("$$SET", "$SET"),
        ("cost: $$5", "cost: $5"),
        ("no dollars", "no dollars"),
    ],
)
def test_interpolation_forms(template: str, expected: str) -> None:
    assert interpolate(template, ENV.get, "x") == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?set it please}", "required variable UNSET is missing a value: set it please"),
        ("${EMPTY:?}", "required variable EMPTY is missing a value"),
        ("${UNSET?gone}", "required variable UNSET is missing a value: gone"),
        ("${UNSET:?need ${SET}}", "required variable UNSET is missing a value: need value"),
        ("$5", "invalid interpolation format for x"),
        ("${", "invalid interpolation format for x"),
        ("${}", "invalid interpolation format for x"),
        ("${SET!x}", "invalid interpolation format for x"),
    ],
)
def test_interpolation_errors(template: str, message: str) -> None:
    with pytest.raises(ComposeError, match="^" + message.replace("$", r"\$")):
        interpolate(template, ENV.get, "x")


def test_interpolation_in_files_uses_dotenv_under_environ(tmp_path: Path) -> None:
    write(tmp_path, ".env", "# comment\nTAG=from-dotenv\nPORT=8080\nexport QUOTED=\"a b\"\nSINGLE='$raw'\n")
    project = load(
        tmp_path,
        """
        services:
          web:
            image: "busybox:${TAG}"
            ports: ["${PORT}:80"]
            environment:
              QUOTED: ${QUOTED}
              SINGLE: $${SINGLE}
              FROM_ENV: ${ONLY_ENV:-none}
        """,
        environ={"PORT": "9090", "ONLY_ENV": "yes"},
    )
    web = project["services"]["web"]
    assert web["image"] == "busybox:from-dotenv"
    assert web["ports"][0]["published"] == "9090"  # environ wins over .env
    assert web["environment"] == {"QUOTED": "a b", "SINGLE": "${SINGLE}", "FROM_ENV": "yes"}


def test_missing_required_variable_in_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="required variable IMAGE is missing a value: pick an image"):
        load(tmp_path, "services:\n  web:\n    image: ${IMAGE:?pick an image}\n")


# ---------------------------------------------------------------------------------------------------------------
# Service fields


def port(target: int, published: str = "", protocol: str = "tcp", host_ip: str = "") -> dict:
    return {"target": target, "published": published, "protocol": protocol, "host_ip": host_ip}


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ('["80"]', [port(80)]),
        ("[80]", [port(80)]),
        ("[8080:80]", [port(80, "8080")]),  # unquoted: YAML 1.2 keeps it a string, not base 60
        ('["127.0.0.1:8080:80/udp"]', [port(80, "8080", "udp", "127.0.0.1")]),
        ('["127.0.0.1::80"]', [port(80, "", "tcp", "127.0.0.1")]),
        ('["[::1]:8080:80"]', [port(80, "8080", "tcp", "::1")]),
        ('["9000-9001:9000-9001"]', [port(9000, "9000"), port(9001, "9001")]),
        ('["9000-9001"]', [port(9000), port(9001)]),
        ('["8000-8010:80"]', [port(80, "8000-8010")]),
        (
            "[{target: 80, published: 8080, protocol: udp, host_ip: 0.0.0.0, mode: host}]",
            [port(80, "8080", "udp", "0.0.0.0")],
        ),
        ("[{target: 443}]", [port(443)]),
    ],
)
def test_ports(tmp_path: Path, ports: str, expected: list[dict]) -> None:
    assert service(tmp_path, f"image: busybox\nports: {ports}\n")["ports"] == expected


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ('["8080:80-81"]', "invalid ranges specified"),
        ('["abc"]', "invalid port format"),
        ('["80/icmp"]', "invalid proto"),
        ('["70000:80"]', "invalid port range"),
    ],
)
def test_invalid_ports(tmp_path: Path, ports: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        service(tmp_path, f"image: busybox\nports: {ports}\n")


def mount(kind: str, source: str, target: str, read_only: bool = False) -> dict:
    return {"type": kind, "source": source, "target": target, "read_only": read_only}


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ("./data:/data:ro", mount("bind", "{dir}/data", "/data", True)),
        ("../up:/up", mount("bind", "{parent}/up", "/up")),
        ("/srv:/srv:rw,z", mount("bind", "/srv", "/srv")),
        ("~/cache:/cache", mount("bind", "{home}/cache", "/cache")),
        ("data:/var/lib/data", mount("volume", "data", "/var/lib/data")),
        ("/anon", mount("volume", "", "/anon")),
        ("{type: bind, source: ./src, target: /src, read_only: true}", mount("bind", "{dir}/src", "/src", True)),
        ("{type: volume, source: data, target: /x}", mount("volume", "data", "/x")),
        ("{type: volume, target: /anon}", mount("volume", "", "/anon")),
        ("{type: tmpfs, target: /run, tmpfs: {size: 1000}}", mount("tmpfs", "", "/run")),
    ],
)
def test_volumes(tmp_path: Path, volume: str, expected: dict) -> None:
    entry = volume if volume.startswith("{") else f'"{volume}"'
    got = service(tmp_path, f"image: busybox\nvolumes: [{entry}]\n")["volumes"]
    home = os.path.expanduser("~")
    expected = {**expected, "source": expected["source"].format(dir=tmp_path, parent=tmp_path.parent, home=home)}
    assert got == [expected]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("command: echo hello world", ["echo", "hello", "world"]),
        ("""command: sh -c 'echo "a b"' """, ["sh", "-c", 'echo "a b"']),
        ('command: ["sh", "-c", "echo $$HOME"]', ["sh", "-c", "echo $HOME"]),
        ("command: []", []),
        ("image: x", None),
    ],
)
def test_command_forms(tmp_path: Path, command: str, expected: list[str] | None) -> None:
    assert service(tmp_path, f"image: busybox\n{command}\n")["command"] == expected


def test_environment_list_mapping_env_file_and_resolution(tmp_path: Path) -> None:
    write(tmp_path, "common.env", "# shared\nA=from-file\nB=from-file\nURL=http://x/?a=b # trailing\nBARE\n")
    web = service(
        tmp_path,
        """
        image: busybox
        env_file: [common.env, {path: missing.env, required: false}]
        environment: ["B=from-list", "HOSTVAR", "NOPE", "EQ=a=b"]
        """,
        environ={"HOSTVAR": "resolved", "BARE": "bare-resolved"},
    )
    assert web["environment"] == {
        "A": "from-file",
        "B": "from-list",
        "URL": "http://x/?a=b",
        "BARE": "bare-resolved",
        "HOSTVAR": "resolved",
        "NOPE": None,
        "EQ": "a=b",
    }
    mapped = service(tmp_path, "image: busybox\nenvironment: {N: 1, F: false, E: null, S: text}\n")
    assert mapped["environment"] == {"N": "1", "F": "false", "E": None, "S": "text"}


def test_required_env_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"env file .*missing\.env not found"):
        service(tmp_path, "image: busybox\nenv_file: missing.env\n")


@pytest.mark.parametrize(
    ("healthcheck", "expected"),
    [
        (
            "{test: curl -f http://localhost, interval: 1m30s, timeout: 10s, retries: 3, start_period: 500ms}",
            {
                "Test": ["CMD-SHELL", "curl -f http://localhost"],
                "Interval": 90_000_000_000,
                "Timeout": 10_000_000_000,
                "StartPeriod": 500_000_000,
                "StartInterval": 0,
                "Retries": 3,
            },
        ),
        (
            '{test: ["CMD", "true"], start_interval: 1s}',
            {
                "Test": ["CMD", "true"],
                "Interval": 0,
                "Timeout": 0,
                "StartPeriod": 0,
                "StartInterval": 10**9,
                "Retries": 0,
            },
        ),
        ("{disable: true}", {"Test": ["NONE"]}),
        (
            "{interval: 2s}",
            {"Test": [], "Interval": 2 * 10**9, "Timeout": 0, "StartPeriod": 0, "StartInterval": 0, "Retries": 0},
        ),
    ],
)
def test_healthcheck(tmp_path: Path, healthcheck: str, expected: dict) -> None:
    assert service(tmp_path, f"image: busybox\nhealthcheck: {healthcheck}\n")["healthcheck"] == expected


def test_networks_forms_and_default(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          listed: {image: busybox, networks: [front, back]}
          mapped:
            image: busybox
            networks:
              front: {aliases: [api, api2], ipv4_address: 172.30.0.5}
              back:
          plain: {image: busybox}
          hosty: {image: busybox, network_mode: host}
          sidecar: {image: busybox, network_mode: "service:plain"}
        networks:
          front:
            ipam: {config: [{subnet: 172.30.0.0/24, gateway: 172.30.0.1}]}
          back: {internal: true, labels: [tier=back]}
          outside: {external: true}
          named: {name: custom-net, driver: macvlan}
        """,
        project_name="demo",
    )
    svcs = project["services"]
    empty = {"aliases": [], "ipv4_address": ""}
    assert svcs["listed"]["networks"] == {"front": empty, "back": empty}
    assert svcs["mapped"]["networks"] == {
        "front": {"aliases": ["api", "api2"], "ipv4_address": "172.30.0.5"},
        "back": empty,
    }
    assert svcs["plain"]["networks"] == {"default": empty}
    assert svcs["hosty"]["networks"] == {} and svcs["hosty"]["network_mode"] == "host"
    assert svcs["sidecar"]["depends_on"] == {
        "plain": {"condition": "service_started", "restart": False, "required": True}
    }
    nets = project["networks"]
    assert nets["default"] == {
        "name": "demo_default",
        "driver": "bridge",
        "external": False,
        "internal": False,
        "labels": {},
        "ipam": {"config": []},
    }
    assert nets["front"]["ipam"] == {"config": [{"subnet": "172.30.0.0/24", "gateway": "172.30.0.1"}]}
    assert (nets["back"]["name"], nets["back"]["internal"], nets["back"]["labels"]) == (
        "demo_back",
        True,
        {"tier": "back"},
    )
    assert (nets["outside"]["name"], nets["outside"]["external"]) == ("outside", True)
    assert (nets["named"]["name"], nets["named"]["driver"]) == ("custom-net", "macvlan")


def test_no_default_network_when_every_service_has_network_mode(tmp_path: Path) -> None:
    project = load(
        tmp_path, "services:\n  a: {image: busybox, network_mode: host}\n  b: {image: x, network_mode: none}\n"
    )
    assert project["networks"] == {}


def test_top_level_volumes(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          web: {image: busybox, volumes: ["data:/d", "ext:/e", "fixed:/f"]}
        volumes:
          data:
          ext: {external: true}
          fixed: {name: my-fixed, driver_opts: {type: tmpfs, device: tmpfs}, labels: {a: b}}
          legacy: {external: {name: old-name}}
        """,
        project_name="p1",
    )
    vols = project["volumes"]
    assert vols["data"] == {"name": "p1_data", "driver": "local", "external": False, "labels": {}, "driver_opts": {}}
    assert (vols["ext"]["name"], vols["ext"]["external"]) == ("ext", True)
    assert vols["fixed"] == {
        "name": "my-fixed",
        "driver": "local",
        "external": False,
        "labels": {"a": "b"},
        "driver_opts": {"type": "tmpfs", "device": "tmpfs"},
    }
    assert (vols["legacy"]["name"], vols["legacy"]["external"]) == ("old-name", True)


def test_depends_on_forms(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          web:
            image: busybox
            depends_on:
              db: {condition: service_healthy, restart: true}
              init: {condition: service_completed_successfully}
              optional: {required: false}
          worker: {image: busybox, depends_on: [db]}
          db: {image: busybox}
          init: {image: busybox}
        """,
    )
    started = {"condition": "service_started", "restart": False, "required": True}
    assert project["services"]["worker"]["depends_on"] == {"db": started}
    assert project["services"]["web"]["depends_on"] == {
        "db": {"condition": "service_healthy", "restart": True, "required": True},
        "init": {"condition": "service_completed_successfully", "restart": False, "required": True},
    }


def test_scalar_fields_and_defaults(tmp_path: Path) -> None:
    web = service(
        tmp_path,
        """
        build: ./app
        restart: unless-stopped
        labels: [com.example=1, flag]
        extra_hosts: {db.local: 10.0.0.2, multi: [10.0.0.3, "::1"]}
        dns: 8.8.8.8
        tmpfs: /run
        expose: [3000, "4000"]
        privileged: true
        init: "true"
        stop_grace_period: 1m30s
        scale: 3
        shm_size: 64m
        ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}
        sysctls: [net.core.somaxconn=1024]
        devices: ["/dev/fuse", {source: /dev/sda, target: /dev/xvda, permissions: rwm}]
        deploy: {resources: {limits: {memory: 512m, cpus: "0.5", pids: 100}}}
        logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
        x-custom: ignored
        unknown_key: ignored
        """,
    )
    assert web["image"] is None
    assert web["build"] == {
        "context": str(tmp_path / "app"),
        "dockerfile": "Dockerfile",
        "args": {},
        "target": "",
        "labels": {},
    }
    assert web["labels"] == {"com.example": "1", "flag": ""}
    assert web["extra_hosts"] == ["db.local:10.0.0.2", "multi:10.0.0.3", "multi:::1"]
    assert (web["dns"], web["tmpfs"], web["expose"]) == (["8.8.8.8"], ["/run"], ["3000", "4000"])
    assert (web["privileged"], web["init"], web["tty"], web["read_only"]) == (True, True, False, False)
    assert (web["stop_grace_period"], web["replicas"], web["shm_size"]) == (90.0, 3, 64 << 20)
    assert web["ulimits"] == {"nproc": {"soft": 65535, "hard": 65535}, "nofile": {"soft": 1024, "hard": 2048}}
    assert web["sysctls"] == {"net.core.somaxconn": "1024"}
    assert web["devices"] == ["/dev/fuse", "/dev/sda:/dev/xvda:rwm"]
    assert (web["mem_limit"], web["cpus"], web["pids_limit"]) == (512 << 20, 0.5, 100)
    assert web["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
    assert (web["restart"], web["network_mode"], web["healthcheck"], web["profiles"]) == (
        "unless-stopped",
        "",
        None,
        [],
    )


def test_build_mapping_and_replicas_from_deploy(tmp_path: Path) -> None:
    web = service(
        tmp_path,
        """
        image: myimg
        build:
          context: ctx
          dockerfile: docker/Dockerfile.dev
          args: [VERSION=1.2, FROM_ENV]
          target: dev
          labels: {l: v}
        deploy: {replicas: 2}
        """,
        environ={"FROM_ENV": "e"},
    )
    assert web["build"] == {
        "context": str(tmp_path / "ctx"),
        "dockerfile": "docker/Dockerfile.dev",
        "args": {"VERSION": "1.2", "FROM_ENV": "e"},
        "target": "dev",
        "labels": {"l": "v"},
    }
    assert web["replicas"] == 2
    with pytest.raises(ComposeError, match=r"can't set distinct values on 'scale' and 'deploy\.replicas'"):
        service(tmp_path, "image: x\nscale: 2\ndeploy: {replicas: 3}\n")


# ---------------------------------------------------------------------------------------------------------------
# Merging


def test_merge_two_files(tmp_path: Path) -> None:
    base = write(
        tmp_path,
        "compose.yaml",
        """
        services:
          web:
            image: web:1
            command: ["serve", "--port", "80"]
            environment: {A: "1", B: "1"}
            ports: ["8080:80"]
            volumes: ["./a:/a", "data:/data"]
            cap_add: [NET_ADMIN]
            dns: [1.1.1.1]
            labels: [keep=yes]
            healthcheck: {test: ["CMD", "a"], interval: 5s}
            build: ./web
          db: {image: postgres}
        volumes: {data: {}}
        """,
    )
    override = write(
        tmp_path,
        "compose.override.yaml",
        """
        services:
          web:
            image: web:2
            command: serve --debug
            environment: ["B=2", "C=3"]
            ports: ["8080:80", "9090:90"]
            volumes: ["./b:/a:ro"]
            cap_add: [NET_ADMIN, SYS_TIME]
            dns: 8.8.8.8
            labels: {extra: "1"}
            healthcheck: {test: ["CMD", "b"]}
            build: {dockerfile: Dockerfile.dev}
          cache: {image: redis}
        """,
    )
    web = load_project([base, override], environ={})["services"]["web"]
    assert web["image"] == "web:2"
    assert web["command"] == ["serve", "--debug"]
    assert web["environment"] == {"A": "1", "B": "2", "C": "3"}
    assert [p["published"] for p in web["ports"]] == ["8080", "9090"]
    assert web["volumes"] == [mount("bind", str(tmp_path / "b"), "/a", True), mount("volume", "data", "/data")]
    assert web["cap_add"] == ["NET_ADMIN", "SYS_TIME"]
    assert web["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert web["labels"] == {"keep": "yes", "extra": "1"}
    assert web["healthcheck"]["Test"] == ["CMD", "b"] and web["healthcheck"]["Interval"] == 5 * 10**9
    assert (web["build"]["context"], web["build"]["dockerfile"]) == (str(tmp_path / "web"), "Dockerfile.dev")


def test_find_files(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no configuration file provided: not found"):
        find_files(str(tmp_path))
    write(tmp_path, "docker-compose.yml", "services: {}\n")
    assert find_files(str(tmp_path)) == [str(tmp_path / "docker-compose.yml")]
    write(tmp_path, "compose.yaml", "services: {}\n")
    write(tmp_path, "docker-compose.override.yml", "services: {}\n")
    assert find_files(str(tmp_path)) == [str(tmp_path / "compose.yaml"), str(tmp_path / "docker-compose.override.yml")]


# ---------------------------------------------------------------------------------------------------------------
# Project naming


@pytest.mark.parametrize(
    ("dirname", "explicit", "top_level", "dotenv", "environ", "expected"),
    [
        ("My.App_1", None, None, None, {}, "myapp_1"),
        ("dir", "explicit", "fromfile", "COMPOSE_PROJECT_NAME=dotenv\n", {}, "explicit"),
        ("dir", None, "From-File", "COMPOSE_PROJECT_NAME=dotenv\n", {}, "from-file"),
        ("dir", None, "${NAME_VAR}", None, {"NAME_VAR": "interp"}, "interp"),
        ("dir", None, None, "COMPOSE_PROJECT_NAME=dotenv\n", {}, "dotenv"),
        ("dir", None, None, "COMPOSE_PROJECT_NAME=dotenv\n", {"COMPOSE_PROJECT_NAME": "Env"}, "env"),
    ],
)
def test_project_name(tmp_path: Path, dirname, explicit, top_level, dotenv, environ, expected) -> None:
    directory = tmp_path / dirname
    directory.mkdir()
    if dotenv:
        write(directory, ".env", dotenv)
    name_line = f"name: {top_level}\n" if top_level else ""
    project = load(directory, name_line + "services:\n  web: {image: busybox}\n", environ, project_name=explicit)
    assert project["name"] == expected
    assert project["working_dir"] == str(directory)
    assert project["networks"]["default"]["name"] == f"{expected}_default"


@pytest.mark.parametrize(("dirname", "explicit"), [("_hidden", None), ("-dash", None), ("dir", "Upper"), ("dir", "_x")])
def test_invalid_project_name(tmp_path: Path, dirname: str, explicit: str | None) -> None:
    directory = tmp_path / dirname
    directory.mkdir()
    with pytest.raises(ComposeError, match="is not a valid project name"):
        load(directory, "services:\n  web: {image: busybox}\n", project_name=explicit)


# ---------------------------------------------------------------------------------------------------------------
# Validation and ordering


@pytest.mark.parametrize(
    ("services", "message"),
    [
        (
            "web: {build: {}}\n  x: {}",
            'service "x" has neither an image nor a build context specified: invalid compose project',
        ),
        (
            "web: {image: a, depends_on: [db]}",
            'service "web" depends on undefined service "db": invalid compose project',
        ),
        (
            "web: {image: a, volumes: ['data:/d']}",
            'service "web" refers to undefined volume data: invalid compose project',
        ),
        (
            "web: {image: a, networks: [back]}",
            'service "web" refers to undefined network back: invalid compose project',
        ),
        (
            "web: {image: a, network_mode: host, networks: [default]}",
            "mutually exclusive `network_mode` and `networks`",
        ),
        (
            "web: {image: a, depends_on: [db]}\n  db: {image: b, depends_on: [web]}",
            "dependency cycle detected: db -> web -> db",
        ),
        ("web: {image: a, secrets: [s]}", 'service "web": secrets is not supported'),
        ("web: {image: a, extends: {service: b}}", 'service "web": extends is not supported'),
        ("web: {image: a, stop_grace_period: soon}", 'time: invalid duration "soon"'),
        ("web: {image: a, privileged: maybe}", "services.web.privileged must be a boolean"),
        ("web: {image: a, depends_on: {b: {condition: whenever}}}\n  b: {image: b}", "invalid condition"),
        ("web: {image: a, volumes: [{type: npipe, target: /x}]}", "volume type 'npipe' is not supported"),
        ("web: [not, a, mapping]", "services.web must be a mapping"),
    ],
)
def test_validation_errors(tmp_path: Path, services: str, message: str) -> None:
    with pytest.raises(ComposeError) as info:
        load(tmp_path, f"services:\n  {services}\n")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty compose file"),
        ("- a\n- b\n", "Top-level object must be a mapping"),
        ("services: [a]\n", "services must be a mapping"),
        ("services: {web: {image: 'x'}\n", "yaml:"),
        ("include: [other.yaml]\nservices: {}\n", "include is not supported"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        load(tmp_path, text)


def test_service_order_and_cycle() -> None:
    def project(deps: dict[str, list[str]]) -> dict:
        return {"services": {name: {"depends_on": {d: {} for d in ds}} for name, ds in deps.items()}}

    assert service_order(project({"web": ["db", "cache"], "db": [], "cache": ["db"], "api": []})) == [
        "api",
        "db",
        "cache",
        "web",
    ]
    assert service_order(project({"c": [], "b": [], "a": []})) == ["a", "b", "c"]
    with pytest.raises(ComposeError, match="dependency cycle detected: a -> b -> c -> a"):
        service_order(project({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}))


def test_optional_dependency_on_missing_service_is_dropped(tmp_path: Path) -> None:
    project = load(tmp_path, "services:\n  web: {image: a, depends_on: {gone: {required: false}}}\n")
    assert project["services"]["web"]["depends_on"] == {}


def test_dump_round_trips(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          web: {image: busybox, ports: ["80:80"], volumes: ["data:/d"], healthcheck: {test: "true", interval: 1s}}
        volumes: {data: {}}
        """,
    )
    text = dump(project)
    assert "web:" in text and "image: busybox" in text
    assert yaml.safe_load(text) == project


# ---------------------------------------------------------------------------------------------------------------
# Units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m30s", 90.0),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("2h45m", 9900.0),
        ("100us", 0.0001),
        ("0", 0.0),
        ("30", 30.0),
        (15, 15.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "1m 30s", "abc"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(ComposeError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64m", 64 << 20),
        ("1g", 1 << 30),
        ("1GB", 1 << 30),
        ("512k", 512 << 10),
        ("512KiB", 512 << 10),
        ("100", 100),
        ("100b", 100),
        ("1.5g", 3 << 29),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "-1", "12x", "1.5.5z"])
def test_parse_size_invalid(text: str) -> None:
    with pytest.raises(ComposeError, match="invalid size"):
        parse_size(text)

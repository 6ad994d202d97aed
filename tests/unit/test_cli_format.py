"""--format templates, tables and docker's human units."""

from __future__ import annotations

import json

import pytest

from dockyard.cli.formatting import (
    IMAGES_TABLE,
    PS_TABLE,
    ContainerRow,
    ImageRow,
    display_ports,
    expand_image_rows,
    render,
    tabwrite,
)
from dockyard.cli.template import TemplateError, parse
from dockyard.cli.units import human_duration, human_size, parse_go_duration, ram_in_bytes

NOW = 1_700_000_000.0
INSPECT = {
    "Id": "abc",
    "Name": "/web",
    "State": {"Status": "running", "Pid": 42, "Running": True},
    "Config": {"Labels": {"k": "v", "a": "b"}, "Env": ["A=1", "B=2"], "Cmd": None},
    "Mounts": [{"Source": "/src", "Destination": "/dst"}, {"Source": "/s2", "Destination": "/d2"}],
}


def run(source: str, data=INSPECT) -> str:
    return parse(source).execute(data)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.State.Status}}", "running"),
        ("{{.State.Pid}}", "42"),
        ("{{.State.Running}}", "true"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Config.Missing}}", "<no value>"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Labels}}", "map[a:b k:v]"),
        ('{{index .Config.Labels "k"}}', "v"),
        ('{{index .Config.Labels "zz"}}', ""),
        ("{{json .Config.Labels}}", '{"k":"v","a":"b"}'),
        ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/src:/dst /s2:/d2 "),
        ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}", "0=/src;1=/s2;"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}{{$v}}{{end}}", "abkv"),
        ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
        ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
        ("{{if .Config.Cmd}}a{{else if .State.Running}}b{{else}}c{{end}}", "b"),
        ("{{with .State}}{{.Pid}}{{end}}", "42"),
        ('{{upper .Name}} {{lower "AB"}} {{title "hello world"}}', "/WEB ab Hello World"),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ("{{truncate .Id 2}}", "ab"),
        ("{{.Name | upper}}", "/WEB"),
        ("{{println .Name}}", "/web\n"),
        ('{{printf "%s-%d" .Name .State.Pid}}', "/web-42"),
        ("{{len .Mounts}}", "2"),
        ("{{$x := .State}}{{$x.Pid}}", "42"),
        ('a {{- " b " -}} c', "a b c"),
        ("{{/* comment */}}ok", "ok"),
        ('{{and .State.Running .Name}} {{or .Config.Cmd "dflt"}} {{not .State.Running}}', "/web dflt false"),
        ("{{(index .Mounts 1).Source}}", "/s2"),
        ("{{1.5}} {{1000000.0}}", "1.5 1e+06"),
    ],
)
def test_template_subset(source: str, expected: str) -> None:
    assert run(source) == expected


def test_json_dot_escapes_html_like_go() -> None:
    assert run("{{json .}}", {"a": "<&>", "b": [1, None]}) == '{"a":"\\u003c\\u0026\\u003e","b":[1,null]}'


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{.Foo", "unclosed action"),
        ("{{nosuch .}}", 'function "nosuch" not defined'),
        ("{{if .A}}x", "unexpected EOF"),
        ("{{end}}", "unexpected"),
        ("{{.A | }}", "missing"),
    ],
)
def test_bad_templates_fail_to_parse(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(source)


def test_execution_errors() -> None:
    with pytest.raises(TemplateError, match="nil pointer evaluating"):
        run("{{.Config.Cmd.X}}")
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render("{{.Nope}}", [ContainerRow({"Id": "x"})])
    with pytest.raises(TemplateError, match="index out of range"):
        run("{{index .Mounts 5}}")


def test_tabwriter_matches_go() -> None:
    text = "A\tBB\tC\nlong-cell-value\tx\tlast\n"
    assert tabwrite(text) == "A                 BB        C\nlong-cell-value   x         last\n"
    # the final cell never widens a column, empty cells still align
    assert tabwrite("X\t\tZ\nY\tsome\tQ\n") == "X                   Z\nY         some      Q\n"


def container(**extra) -> dict:
    base = {
        "Id": "f" * 64,
        "Names": ["/web"],
        "Image": "busybox",
        "ImageID": "sha256:" + "1" * 64,
        "Command": "sh -c 'echo hello; sleep 1000'",
        "Created": NOW - 125,
        "State": "running",
        "Status": "Up 3 seconds",
        "Ports": [],
        "Labels": {"com.example": "x"},
        "Mounts": [],
    }
    base.update(extra)
    return base


def test_ps_default_table() -> None:
    rows = [
        ContainerRow(container(), now=NOW),
        ContainerRow(
            container(
                Id="e" * 64,
                Names=["/db"],
                Image="sha256:" + "2" * 64,
                Command="true",
                Status="Exited (0) 5 seconds ago",
                Created=NOW - 7200,
            ),
            now=NOW,
        ),
    ]
    out = render("table", rows, ContainerRow.headers, PS_TABLE)
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE          COMMAND                  CREATED         STATUS                     "
        "PORTS     NAMES",
        'ffffffffffff   busybox        "sh -c \'echo hello; …"   2 minutes ago   Up 3 seconds             '
        "            web",
        'eeeeeeeeeeee   222222222222   "true"                   2 hours ago     Exited (0) 5 seconds ago   '
        "          db",
    ]


def test_ps_custom_formats() -> None:
    rows = [ContainerRow(container(), now=NOW)]
    assert render('{{.ID}} {{.Names}} {{.Label "com.example"}}', rows) == "ffffffffffff web x\n"
    table = render("table {{.Names}}\t{{.State}}", rows, ContainerRow.headers)
    assert table == "NAMES     STATE\nweb       running\n"
    data = json.loads(render("json", rows))
    assert data["Names"] == "web" and data["RunningFor"] == "2 minutes ago" and "Label" not in data
    no_trunc = ContainerRow(container(), trunc=False, now=NOW)
    assert render("{{.ID}}|{{.Command}}", [no_trunc]) == "f" * 64 + "|\"sh -c 'echo hello; sleep 1000'\"\n"


def test_ports_display() -> None:
    ports = [
        {"PrivatePort": 80, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert display_ports(ports) == "53/udp, 80-81/tcp, 0.0.0.0:8443->443/tcp"


def test_images_table_and_expansion() -> None:
    images = [
        {
            "Id": "sha256:" + "a" * 64,
            "RepoTags": ["busybox:latest", "busybox:1.36"],
            "Created": NOW - 86400 * 20,
            "Size": 4_261_550,
            "RepoDigests": ["busybox@sha256:" + "d" * 64],
        },
        {"Id": "sha256:" + "b" * 64, "RepoTags": None, "RepoDigests": None, "Created": NOW - 30, "Size": 999},
    ]
    rows = expand_image_rows(images, now=NOW)
    out = render("table", rows, ImageRow.headers, IMAGES_TABLE)
    assert out.splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE",
        "busybox      latest    aaaaaaaaaaaa   2 weeks ago      4.26MB",
        "busybox      1.36      aaaaaaaaaaaa   2 weeks ago      4.26MB",
        "<none>       <none>    bbbbbbbbbbbb   30 seconds ago   999B",
    ]
    assert rows[0].Digest() == "sha256:" + "d" * 64
    assert render("{{.Repository}}:{{.Tag}}", rows[:1]) == "busybox:latest\n"


def test_header_functions_pass_through() -> None:
    rows = [ContainerRow(container(), now=NOW)]
    assert render("table {{upper .Names}}", rows, ContainerRow.headers) == "NAMES\nWEB\n"


@pytest.mark.parametrize(
    ("size", "precision", "expected"),
    [
        (0, 3, "0B"),
        (999, 3, "999B"),
        (1000, 3, "1kB"),
        (4_261_550, 3, "4.26MB"),
        (1_982_256, 4, "1.982MB"),
        (1_234_567_890, 4, "1.235GB"),
        (5_000_000_000_000, 3, "5TB"),
    ],
)
def test_human_size(size: int, precision: int, expected: str) -> None:
    assert human_size(size, precision) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (3 * 3600, "3 hours"),
        (7200, "2 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_size_and_duration_parsing() -> None:
    assert ram_in_bytes("32m") == 32 * 1024 * 1024
    assert ram_in_bytes("1.5g") == int(1.5 * (1 << 30))
    assert ram_in_bytes("64MB") == 64 << 20
    assert ram_in_bytes("100") == 100
    with pytest.raises(ValueError):
        ram_in_bytes("lots")
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("10s") == 10
    assert parse_go_duration("2024-01-01") is None

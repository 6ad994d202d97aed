"""Networking end to end with real namespaces, veths, bridges and nftables rules: DNS by name and alias
on a user network, --network none, isolation between networks, published ports reachable from the
host's loopback, bad input, cleanup after rm, and IPAM consistency across a daemon restart.

Traffic goes only to loopback and to the containers these tests create.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.waiting import wait_until

# DOCKYARD_TEST_RUNTIME=runc runs the containers of these tests with another runtime.
RUNTIME = ["--runtime", os.environ["DOCKYARD_TEST_RUNTIME"]] if os.environ.get("DOCKYARD_TEST_RUNTIME") else []
HTTPD = "mkdir -p /w && echo hello-$HOSTNAME > /w/index.html && exec httpd -f -p 80 -h /w"
GET = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 80"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def nets(dy) -> Iterator[list[str]]:
    """Networks the test creates; removed (after the test's containers) at the end."""
    names: list[str] = []
    yield names
    for cid in dy.out("ps", "-aq", "--no-trunc").split():
        networks = json.loads(dy.out("inspect", "--format", "{{json .NetworkSettings.Networks}}", cid)) or {}
        if set(networks) & set(names):
            dy.cli("rm", "-f", cid)
    for name in names:
        dy.cli("network", "rm", name)


def _run(dy, *args: str) -> subprocess.CompletedProcess[bytes]:
    return dy.cli("run", *RUNTIME, *args, timeout=60)


def _inspect(dy, ref: str) -> dict:
    return json.loads(dy.out("inspect", ref))[0]


def _net_inspect(dy, ref: str) -> dict:
    return json.loads(dy.out("network", "inspect", ref))[0]


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _links_settle(expected: Callable[[set[str]], bool], timeout: float = 5) -> set[str]:
    """Host interfaces once `expected` holds (veths of exited containers go in the background)."""
    deadline = time.time() + timeout
    while not expected(links := _links()) and time.time() < deadline:
        time.sleep(0.05)
    return links


def _nft_table(dy) -> str:
    tag = hashlib.sha256(str(dy.data_root).encode()).hexdigest()[:8]
    result = subprocess.run(["nft", "list", "table", "ip", f"dockyard-{tag}"], capture_output=True, text=True)
    return result.stdout


def _ipam_allocations(dy, net_id: str) -> dict:
    return json.loads((dy.data_root / "networks" / f"{net_id}.json").read_text())["IPAMState"]["Allocations"]


def _wait_http(port: int, host: str = "127.0.0.1", timeout: float = 10) -> bytes:
    """GET / through a published port (the server inside may need a moment to listen)."""
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if b"200 OK" in data:
                return data
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"no HTTP answer on {host}:{port}")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_web(dy, name: str, *flags: str) -> dict:
    result = _run(dy, "-d", "--name", name, *flags, "busybox", "sh", "-c", HTTPD)
    assert result.returncode == 0, result.stderr.decode()
    return _inspect(dy, name)


def _client(dy, network: str, script: str) -> subprocess.CompletedProcess[bytes]:
    return _run(dy, "--rm", "--network", network, "busybox", "sh", "-c", script)


def test_user_network_resolves_names_and_aliases_then_cleans_up(dy, nets):
    net = f"n-{_uid()}"
    nets.append(net)
    net_id = dy.out("network", "create", net).strip()
    web = f"web-{_uid()}"
    info = _start_web(dy, web, "--network", net, "--network-alias", "www")
    endpoint = info["NetworkSettings"]["Networks"][net]
    assert endpoint["IPAddress"] and endpoint["NetworkID"] == net_id
    assert "www" in endpoint["Aliases"] and web in endpoint["DNSNames"]
    host_veth = "veth" + endpoint["EndpointID"][:7]
    assert host_veth in _links()
    assert _ipam_allocations(dy, net_id) == {endpoint["IPAddress"]: info["Id"]}

    by_name = _client(dy, net, "cat /etc/resolv.conf; " + GET.format(host=web) + "; " + GET.format(host="www"))
    out = by_name.stdout.decode()
    assert by_name.returncode == 0, by_name.stderr.decode()
    assert "nameserver 127.0.0.11" in out
    assert out.count(f"hello-{info['Config']['Hostname']}") == 2
    members = _net_inspect(dy, net)["Containers"]
    assert members[info["Id"]]["Name"] == web

    dy.out("rm", "-f", web)
    assert host_veth not in _links_settle(lambda links: host_veth not in links)
    assert _ipam_allocations(dy, net_id) == {}
    bridge = f"br-{net_id[:12]}"
    assert bridge in _links()
    dy.out("network", "rm", net)
    nets.remove(net)
    assert bridge not in _links()
    assert bridge not in _nft_table(dy)
    assert dy.cli("network", "inspect", net).returncode != 0


def test_network_none_has_only_loopback(dy):
    result = _run(dy, "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert result.returncode == 0, result.stderr.decode()
    names = [line.split(":")[1].strip() for line in result.stdout.decode().splitlines()]
    assert names == ["lo"]


def test_default_bridge_gives_address_route_and_etc_files(dy):
    script = "ip -o -4 addr show eth0; ip route; cat /etc/hosts; cat /etc/hostname"
    result = _run(dy, "--rm", "--hostname", "box1", "busybox", "sh", "-c", script)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    subnet = _net_inspect(dy, "bridge")["IPAM"]["Config"][0]
    assert f"default via {subnet['Gateway']}" in out
    address = out.split("inet ")[1].split("/")[0]
    assert f"{address}\tbox1" in out


def test_containers_on_different_networks_cannot_reach_each_other(dy, nets):
    net_a, net_b = f"a-{_uid()}", f"b-{_uid()}"
    nets += [net_a, net_b]
    dy.out("network", "create", net_a)
    dy.out("network", "create", net_b)
    info = _start_web(dy, f"web-{_uid()}", "--network", net_a)
    address = info["NetworkSettings"]["Networks"][net_a]["IPAddress"]
    same = _client(dy, net_a, GET.format(host=address))
    assert b"200 OK" in same.stdout, same.stderr.decode()
    other = _client(dy, net_b, GET.format(host=address))
    assert b"200 OK" not in other.stdout
    unknown = _client(dy, net_b, GET.format(host=info["Name"].lstrip("/")))
    assert b"200 OK" not in unknown.stdout


def test_internal_network_has_no_default_route(dy, nets):
    net = f"i-{_uid()}"
    nets.append(net)
    dy.out("network", "create", "--internal", "--subnet", "10.213.7.0/24", net)
    result = _run(dy, "--rm", "--network", net, "--ip", "10.213.7.50", "busybox", "sh", "-c", "ip -o -4 addr; ip route")
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "10.213.7.50/24" in out and "default" not in out


def test_published_ports_reachable_from_loopback(dy):
    port = _free_port()
    name = f"pub-{_uid()}"
    info = _start_web(dy, name, "-p", f"127.0.0.1:{port}:80")
    assert b"hello-" in _wait_http(port)
    assert info["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert dy.out("port", name).strip() == f"80/tcp -> 127.0.0.1:{port}"
    assert f"127.0.0.1:{port}->80/tcp" in dy.out("ps", "--filter", f"name={name}")
    assert f"dport {port}" in _nft_table(dy)

    auto = f"pub-{_uid()}"
    auto_info = _start_web(dy, auto, "--expose", "80", "-P")
    binding = auto_info["NetworkSettings"]["Ports"]["80/tcp"][0]
    assert binding["HostIp"] == "0.0.0.0" and int(binding["HostPort"]) > 0
    assert b"hello-" in _wait_http(int(binding["HostPort"]))

    proxy_pid = int((dy.data_root / "containers" / info["Id"] / "proxy.pid").read_text())
    dy.out("rm", "-f", name, auto)
    assert not os.path.exists(f"/proc/{proxy_pid}")
    table = _nft_table(dy)
    assert f"dport {port}" not in table and f"dport {binding['HostPort']}" not in table
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_bad_input_gives_docker_errors_and_creates_nothing(dy, nets):
    net = f"s-{_uid()}"
    nets.append(net)
    net_id = dy.out("network", "create", "--subnet", "10.213.8.0/24", net).strip()
    overlap = dy.cli("network", "create", "--subnet", "10.213.8.128/25", f"o-{_uid()}")
    assert overlap.returncode != 0
    assert "Pool overlaps with other one on this address space" in overlap.stderr.decode()
    gateway = dy.cli("network", "create", "--subnet", "10.213.9.0/24", "--gateway", "10.1.1.1", f"g-{_uid()}")
    assert gateway.returncode != 0 and "no matching subnet for gateway 10.1.1.1" in gateway.stderr.decode()

    before = set(dy.out("ps", "-aq").split())
    outside = _run(dy, "--network", net, "--ip", "10.9.9.9", "busybox", "true")
    assert outside.returncode != 0
    assert "no configured subnet or ip-range contain the IP address 10.9.9.9" in outside.stderr.decode()
    assert set(dy.out("ps", "-aq").split()) == before

    with socket.socket() as holder:  # a port someone else holds
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        links = _links()
        name = f"busy-{_uid()}"
        busy = _run(dy, "-d", "--name", name, "--network", net, "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert busy.returncode != 0
        assert f"127.0.0.1:{port}: bind: address already in use" in busy.stderr.decode()
        assert _inspect(dy, name)["State"]["Status"] == "created"
        assert _links_settle(lambda now: now == links) == links
        assert _ipam_allocations(dy, net_id) == {}
        assert f"dport {port}" not in _nft_table(dy)


def test_restart_keeps_allocations_of_running_containers(dy, nets):
    net = f"r-{_uid()}"
    nets.append(net)
    net_id = dy.out("network", "create", "--subnet", "10.213.10.0/24", net).strip()
    keep = _start_web(dy, f"keep-{_uid()}", "--network", net)
    lost = _start_web(dy, f"lost-{_uid()}", "--network", net)
    keep_ip = keep["NetworkSettings"]["Networks"][net]["IPAddress"]
    lost_veth = "veth" + lost["NetworkSettings"]["Networks"][net]["EndpointID"][:7]
    dy.kill()
    try:
        os.kill(lost["State"]["Pid"], 9)  # dies while the daemon is down
        time.sleep(0.5)
    finally:
        dy.start()
    assert _inspect(dy, lost["Id"])["State"]["Running"] is False
    assert _ipam_allocations(dy, net_id) == {keep_ip: keep["Id"]}
    assert lost_veth not in _links_settle(lambda links: lost_veth not in links)
    assert _net_inspect(dy, net)["Containers"][keep["Id"]]["IPv4Address"] == f"{keep_ip}/24"
    # the embedded DNS came back for the running container
    result = _client(dy, net, GET.format(host=keep["Name"].lstrip("/")))
    assert b"200 OK" in result.stdout, result.stderr.decode()
    fresh = _start_web(dy, f"fresh-{_uid()}", "--network", net)
    assert fresh["NetworkSettings"]["Networks"][net]["IPAddress"] != keep_ip


def test_connect_and_disconnect_a_running_container(dy, nets):
    net_a, net_b = f"ca-{_uid()}", f"cb-{_uid()}"
    nets += [net_a, net_b]
    dy.out("network", "create", net_a)
    dy.out("network", "create", net_b)
    web = f"web-{_uid()}"
    _start_web(dy, web, "--network", net_a)
    first = _inspect(dy, web)["NetworkSettings"]["Networks"][net_a]["IPAddress"]
    dy.out("network", "connect", "--alias", "second", net_b, web)
    endpoint = _inspect(dy, web)["NetworkSettings"]["Networks"][net_b]
    assert endpoint["IPAddress"] and "second" in endpoint["DNSNames"]
    reached = _client(dy, net_b, GET.format(host="second"))
    assert b"200 OK" in reached.stdout, reached.stderr.decode()
    hosts = dy.out("exec", web, "cat", "/etc/hosts")  # the running container sees its new address
    assert f"{endpoint['IPAddress']}\t" in hosts and "127.0.0.11" in dy.out("exec", web, "cat", "/etc/resolv.conf")
    dy.out("network", "disconnect", net_b, web)
    assert net_b not in _inspect(dy, web)["NetworkSettings"]["Networks"]
    hosts = dy.out("exec", web, "cat", "/etc/hosts")
    assert f"{endpoint['IPAddress']}\t" not in hosts and f"{first}\t" in hosts
    gone = _client(dy, net_b, GET.format(host=endpoint["IPAddress"]))
    assert b"200 OK" not in gone.stdout
    assert dy.cli("network", "rm", net_a).returncode != 0  # still in use by web


def test_network_container_mode_shares_the_namespace_and_etc_files(dy):
    owner = f"own-{_uid()}"
    assert _run(dy, "-d", "--name", owner, "busybox", "sh", "-c", HTTPD).returncode == 0
    address = _inspect(dy, owner)["NetworkSettings"]["IPAddress"]
    script = "hostname; ip -o -4 addr show eth0; " + GET.format(host="127.0.0.1")
    out = _run(dy, "--rm", "--network", f"container:{owner}", "busybox", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert text.splitlines()[0] == _inspect(dy, owner)["Config"]["Hostname"]  # the owner's hostname
    assert f"inet {address}/" in text and f"hello-{text.splitlines()[0]}" in text  # its address, its localhost

    joined = f"join-{_uid()}"
    assert _run(dy, "-d", "--name", joined, "--network", f"container:{owner}", "busybox", "sleep", "60").returncode == 0
    info = _inspect(dy, joined)
    assert info["HostConfig"]["NetworkMode"] == f"container:{owner}"
    assert info["NetworkSettings"]["Networks"] == {} and info["HostsPath"] == _inspect(dy, owner)["HostsPath"]
    refused = dy.cli("network", "connect", "bridge", joined)
    assert refused.returncode != 0 and b"sharing network namespace with another container" in refused.stderr

    dy.out("stop", "-t", "0", owner)
    out = _run(dy, "--network", f"container:{owner}", "busybox", "true")
    assert out.returncode == 125 and f"cannot join network of a non running container: {owner}".encode() in out.stderr
    doomed = f"doomed-{_uid()}"
    out = _run(dy, "--rm", "--name", doomed, "--network", "container:no-such-owner", "busybox", "true")
    assert out.returncode == 125 and b"No such container: no-such-owner" in out.stderr
    assert b"Unable to find image" not in out.stderr  # create succeeded: the lookup is at start, as docker's
    assert wait_until(lambda: dy.cli("inspect", doomed).returncode != 0)  # --rm removes it after a failed start
    for flags, conflict in [
        (["-p", "8080:80"], "port publishing"),
        (["--hostname", "x"], "hostname"),
        (["--dns", "10.0.0.1"], "dns"),
        (["--add-host", "a:10.0.0.1"], "custom host-to-IP mapping"),
        (["--expose", "80"], "port exposing"),
    ]:
        out = _run(dy, "--network", f"container:{owner}", *flags, "busybox", "true")
        assert out.returncode == 125 and f"conflicting options: {conflict}".encode() in out.stderr, flags

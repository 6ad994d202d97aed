"""IPAM and the other pure pieces of the network package (no namespaces, no root needed):
subnet choice and address pools, the embedded DNS wire format, the nftables ruleset, port requests."""

from __future__ import annotations

import re
import socket
import struct
from ipaddress import IPv4Address, IPv4Network

import pytest

from dockyard.errors import Conflict, InvalidParameter
from dockyard.network import dns, etcfiles, ports
from dockyard.network.firewall import BridgeRule, PortRule, render_iptables, render_nft
from dockyard.network.ipam import Pool, choose_subnet, default_pools


# ------------------------------------------------------------------ subnets
def test_choose_subnet_skips_taken_and_overlapping_routes():
    taken = [IPv4Network("172.17.0.0/16"), IPv4Network("172.18.5.0/24")]
    assert choose_subnet(taken) == IPv4Network("172.19.0.0/16")


def test_choose_subnet_falls_back_to_192_168_blocks_then_fails():
    taken = [IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/20")]
    assert choose_subnet(taken) == IPv4Network("192.168.16.0/20")
    with pytest.raises(Conflict):
        choose_subnet([IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1")])
    assert len(list(default_pools())) == 15 + 16


# ------------------------------------------------------------------ pools
def test_pool_allocates_lowest_free_skipping_gateway():
    pool = Pool.create("10.1.0.0/24")
    assert pool.gateway == IPv4Address("10.1.0.1")
    assert pool.allocate("a") == IPv4Address("10.1.0.2")
    assert pool.allocate("b") == IPv4Address("10.1.0.3")
    pool.release("a")
    assert pool.allocate("c") == IPv4Address("10.1.0.2")
    assert pool.owner_address("b") == IPv4Address("10.1.0.3")


def test_pool_gateway_and_range_validation():
    with pytest.raises(InvalidParameter, match=re.escape("no matching subnet for gateway 10.2.0.1")):
        Pool.create("10.1.0.0/24", gateway="10.2.0.1")
    with pytest.raises(InvalidParameter, match="no matching subnet for range"):
        Pool.create("10.1.0.0/24", ip_range="10.1.1.0/28")
    with pytest.raises(InvalidParameter, match="invalid CIDR address"):
        Pool.create("10.1.0.0/33")
    pool = Pool.create("10.1.0.0/24", gateway="10.1.0.254", ip_range="10.1.0.128/28")
    assert pool.allocate("a") == IPv4Address("10.1.0.129")


def test_pool_preferred_address_rules():
    pool = Pool.create("10.1.0.0/24", ip_range="10.1.0.128/28")
    assert pool.allocate("a", "10.1.0.7") == IPv4Address("10.1.0.7")  # inside the subnet, outside the range
    with pytest.raises(Conflict, match="Address already in use"):
        pool.allocate("b", "10.1.0.7")
    with pytest.raises(Conflict, match="Address already in use"):
        pool.allocate("b", "10.1.0.1")  # the gateway
    with pytest.raises(
        InvalidParameter, match=re.escape("no configured subnet or ip-range contain the IP address 10.9.0.1")
    ):
        pool.allocate("b", "10.9.0.1")
    with pytest.raises(InvalidParameter):
        pool.allocate("b", "10.1.0.255")  # broadcast


def test_pool_exhaustion_and_restore_retain():
    pool = Pool.create("10.1.0.0/30")  # .1 gateway, .2 the only host
    pool.allocate("a")
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        pool.allocate("b")
    pool = Pool.create("10.1.0.0/24")
    for owner in ("a", "b", "c"):
        pool.allocate(owner)
    assert pool.retain({"b"}) == ["10.1.0.2", "10.1.0.4"]
    assert pool.allocations == {"10.1.0.3": "b"}


def test_pool_round_trips_through_its_record():
    pool = Pool.create("10.1.0.0/24", ip_range="10.1.0.64/26")
    pool.allocate("x")
    again = Pool.from_dict(pool.to_dict())
    assert again == pool
    assert again.allocate("y") == IPv4Address("10.1.0.66")


# ------------------------------------------------------------------ DNS wire format
def _query(name: str, qtype: int = dns.TYPE_A, qid: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def test_dns_answer_for_known_name():
    packet = _query("Web")
    qid, name, qtype, end = dns.parse_query(packet)
    assert (qid, name, qtype, end) == (0x1234, "web", dns.TYPE_A, len(packet))
    reply = dns.build_answer(packet, end, qtype, ["172.18.0.2", "172.18.0.3"])
    rid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (rid, flags & 0x8000, flags & 0xF, qd, an) == (0x1234, 0x8000, 0, 1, 2)
    assert reply[-4:] == socket.inet_aton("172.18.0.3")


def test_dns_aaaa_for_known_name_is_empty_and_unknown_is_nxdomain():
    packet = _query("web", qtype=28)
    _, _, qtype, end = dns.parse_query(packet)
    no_data = dns.build_answer(packet, end, qtype, ["172.18.0.2"])
    assert struct.unpack("!HH", no_data[2:4] + no_data[6:8]) == (0x8180, 0)
    nx = dns.build_answer(packet, end, qtype, None)
    assert struct.unpack("!H", nx[2:4])[0] & 0xF == dns.RCODE_NXDOMAIN
    with pytest.raises(ValueError):
        dns.parse_query(b"\0" * 5)


# ------------------------------------------------------------------ firewall rulesets
def test_nft_ruleset_dnat_masquerade_and_isolation():
    bridges = [
        BridgeRule("br-a", IPv4Network("10.1.0.0/24")),
        BridgeRule("br-b", IPv4Network("10.2.0.0/24")),
        BridgeRule("br-i", IPv4Network("10.3.0.0/24"), internal=True),
    ]
    rules = [PortRule("tcp", "127.0.0.1", 8080, "10.1.0.2", 80, "br-a")]
    cmds = render_nft("dockyard-t", bridges, rules)["nftables"]
    assert cmds[1] == {"delete": {"table": {"family": "ip", "name": "dockyard-t"}}}  # replaced atomically
    added = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    dnat = [r for r in added if r["chain"] == "ports"]
    assert len(dnat) == 1 and {"dnat": {"addr": "10.1.0.2", "port": 80}} in dnat[0]["expr"]
    masq = [r for r in added if r["chain"] == "postrouting"]
    assert len(masq) == 2  # not for the internal network
    forward = [r["expr"] for r in added if r["chain"] == "forward"]
    isolation = [e for e in forward if any(x.get("match", {}).get("right") == {"set": ["br-b", "br-i"]} for x in e)]
    assert isolation and isolation[0][-1] == {"drop": None}
    assert any(e[-1] == {"drop": None} and e[0]["match"]["right"] == "br-i" for e in forward)


def test_iptables_fallback_uses_own_chains():
    text, jumps = render_iptables("t1", [BridgeRule("br-a", IPv4Network("10.1.0.0/24"))], [
        PortRule("udp", "", 5353, "10.1.0.2", 53, "br-a"),
    ])  # fmt: skip
    assert "-A DY-t1-PORTS ! -i br-a -p udp -m udp --dport 5353 -j DNAT --to-destination 10.1.0.2:53" in text
    assert "-A DY-t1-POST -s 10.1.0.0/24 ! -o br-a -j MASQUERADE" in text
    assert all(j[-1].startswith("DY-t1-") for j in jumps)


# ------------------------------------------------------------------ ports and /etc files
def test_port_requests_from_bindings_and_publish_all():
    host_config = {
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000-8010"}]},
        "PublishAllPorts": True,
    }
    config = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}
    requests = ports.requests_from(host_config, config)
    assert requests == [
        ports.PortRequest("tcp", 80, "127.0.0.1", (8000, 8010)),
        ports.PortRequest("udp", 53, "", (0, 0)),
    ]
    with pytest.raises(InvalidParameter):
        ports.requests_from({"PortBindings": {"80/sctp": [{}]}}, {})


def test_bind_picks_next_free_port_of_a_range():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        request = ports.PortRequest("tcp", 80, "127.0.0.1", (taken, taken))
        with pytest.raises(ports.PortTaken):
            ports.bind(request)
        ephemeral = ports.bind(ports.PortRequest("tcp", 80, "127.0.0.1", (0, 0)))
        with ephemeral:
            assert ephemeral.getsockname()[1] not in (0, taken)


def test_resolv_conf_rules(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nsearch example.test\noptions edns0\n")
    assert etcfiles.resolv_content(True, [], [], [], str(host)) == (
        "nameserver 127.0.0.11\nsearch example.test\noptions edns0 ndots:0\n"
    )
    plain = etcfiles.resolv_content(False, [], [], [], str(host))
    assert plain.startswith("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")  # local servers are unusable inside
    assert etcfiles.resolv_content(False, ["10.0.0.53"], ["s"], [], str(host)).startswith(
        "nameserver 10.0.0.53\nsearch s\n"
    )
    hosts = etcfiles.hosts_content("box", ["10.1.0.2"], ["db:10.1.0.9"])
    assert hosts.endswith("10.1.0.9\tdb\n10.1.0.2\tbox\n") and hosts.startswith("127.0.0.1\tlocalhost\n")

"""dockyard's own firewall table: DNAT for published ports, masquerade, isolation between networks.

The whole table is derived from the daemon's live state and replaced in one atomic nftables
transaction (`nft -j -f -`) on every change, so a restart or a crash never leaves stale rules: the
next apply rewrites them. Nothing outside this table (or, with iptables, our own chains) is touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Network

from dockyard.errors import DockyardError


@dataclass(frozen=True)
class BridgeRule:
    name: str
    subnet: IPv4Network
    internal: bool = False
    masquerade: bool = True


@dataclass(frozen=True)
class PortRule:
    proto: str  # tcp | udp
    host_ip: str  # "" or 0.0.0.0 for every address
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


def _match(left: dict, right: object, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _prefix(net: IPv4Network) -> dict:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


_LOCAL_DST = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


def render_nft(table: str, bridges: list[BridgeRule], ports: list[PortRule]) -> dict:
    """The nftables JSON transaction that (re)creates `table` for this state."""
    fam = {"family": "ip", "table": table}
    cmds: list[dict] = [
        {"add": {"table": {"family": "ip", "name": table}}},
        {"delete": {"table": {"family": "ip", "name": table}}},
        {"add": {"table": {"family": "ip", "name": table}}},
    ]

    def chain(name: str, **base: object) -> None:
        cmds.append({"add": {"chain": {**fam, "name": name, **base}}})

    def rule(chain_name: str, *expr: dict) -> None:
        cmds.append({"add": {"rule": {**fam, "chain": chain_name, "expr": list(expr)}}})

    chain("ports")
    chain("prerouting", type="nat", hook="prerouting", prio=-100, policy="accept")
    chain("output", type="nat", hook="output", prio=-100, policy="accept")
    chain("postrouting", type="nat", hook="postrouting", prio=100, policy="accept")
    chain("forward", type="filter", hook="forward", prio=0, policy="accept")
    rule("prerouting", _LOCAL_DST, {"jump": {"target": "ports"}})
    rule(
        "output",
        _match(_payload("ip", "daddr"), _prefix(IPv4Network("127.0.0.0/8")), "!="),
        _LOCAL_DST,
        {"jump": {"target": "ports"}},
    )
    for p in ports:
        expr = [_match(_meta("iifname"), p.bridge, "!=")]
        if p.host_ip not in ("", "0.0.0.0"):
            expr.append(_match(_payload("ip", "daddr"), p.host_ip))
        expr.append(_match(_payload(p.proto, "dport"), p.host_port))
        expr.append({"dnat": {"addr": p.container_ip, "port": p.container_port}})
        rule("ports", *expr)
    names = [b.name for b in bridges]
    for b in bridges:
        others = [n for n in names if n != b.name]
        if not b.internal and b.masquerade:
            rule(
                "postrouting",
                _match(_payload("ip", "saddr"), _prefix(b.subnet)),
                _match(_meta("oifname"), b.name, "!="),
                {"masquerade": None},
            )
        rule("forward", _match(_meta("iifname"), b.name), _match(_meta("oifname"), b.name), {"accept": None})
        if b.internal:
            rule("forward", _match(_meta("iifname"), b.name), {"drop": None})
            rule("forward", _match(_meta("oifname"), b.name), {"drop": None})
        elif others:
            rule("forward", _match(_meta("iifname"), b.name), _match(_meta("oifname"), {"set": others}), {"drop": None})
    return {"nftables": cmds}


def render_iptables(tag: str, bridges: list[BridgeRule], ports: list[PortRule]) -> tuple[str, list[list[str]]]:
    """iptables-restore input for our own chains, and the jump rules the built-in chains need."""
    pre, post, fwd = f"DY-{tag}-PORTS", f"DY-{tag}-POST", f"DY-{tag}-FWD"
    nat = ["*nat", f":{pre} - [0:0]", f":{post} - [0:0]"]
    for p in ports:
        dst = f" -d {p.host_ip}" if p.host_ip not in ("", "0.0.0.0") else ""
        nat.append(
            f"-A {pre} ! -i {p.bridge}{dst} -p {p.proto} -m {p.proto} --dport {p.host_port} "
            f"-j DNAT --to-destination {p.container_ip}:{p.container_port}"
        )
    for b in bridges:
        if not b.internal and b.masquerade:
            nat.append(f"-A {post} -s {b.subnet} ! -o {b.name} -j MASQUERADE")
    flt = ["*filter", f":{fwd} - [0:0]"]
    for b in bridges:
        flt.append(f"-A {fwd} -i {b.name} -o {b.name} -j ACCEPT")
        if b.internal:
            flt += [f"-A {fwd} -i {b.name} -j DROP", f"-A {fwd} -o {b.name} -j DROP"]
        else:
            flt += [f"-A {fwd} -i {b.name} -o {o.name} -j DROP" for o in bridges if o.name != b.name]
    jumps = [
        ["-t", "nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", pre],
        ["-t", "nat", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", pre],
        ["-t", "nat", "POSTROUTING", "-j", post],
        ["-t", "filter", "FORWARD", "-j", fwd],
    ]
    return "\n".join([*nat, "COMMIT", *flt, "COMMIT", ""]), jumps


def _run(argv: list[str], data: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=data, capture_output=True, text=True, check=False)


class Firewall:
    """Applies the state to nftables (preferred) or iptables, whichever the host has."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.table = "dockyard" if not tag else f"dockyard-{tag}"
        self.backend = "nft" if shutil.which("nft") else ("iptables" if shutil.which("iptables") else "")

    def apply(self, bridges: list[BridgeRule], ports: list[PortRule]) -> None:
        if self.backend == "nft":
            result = _run(["nft", "-j", "-f", "-"], json.dumps(render_nft(self.table, bridges, ports)))
            if result.returncode != 0:
                raise DockyardError(f"failed to program firewall rules: {result.stderr.strip()}")
        elif self.backend == "iptables":
            self._apply_iptables(bridges, ports)

    def _apply_iptables(self, bridges: list[BridgeRule], ports: list[PortRule]) -> None:
        text, jumps = render_iptables(self.tag or "D", bridges, ports)
        result = _run(["iptables-restore", "--noflush"], text)
        if result.returncode != 0:
            raise DockyardError(f"failed to program firewall rules: {result.stderr.strip()}")
        for jump in jumps:
            table, chain, rest = jump[:2], jump[2], jump[3:]
            if _run(["iptables", *table, "-C", chain, *rest]).returncode != 0:
                _run(["iptables", *table, "-I", chain, "1", *rest])

    def remove(self) -> None:
        """Delete everything of ours (used when no network is left and by tests)."""
        if self.backend == "nft":
            _run(["nft", "delete", "table", "ip", self.table])
        elif self.backend == "iptables":
            _, jumps = render_iptables(self.tag or "D", [], [])
            for jump in jumps:
                table, chain, rest = jump[:2], jump[2], jump[3:]
                while _run(["iptables", *table, "-D", chain, *rest]).returncode == 0:
                    pass
            tag = self.tag or "D"
            for table, chain in (("nat", f"DY-{tag}-PORTS"), ("nat", f"DY-{tag}-POST"), ("filter", f"DY-{tag}-FWD")):
                _run(["iptables", "-t", table, "-F", chain])
                _run(["iptables", "-t", table, "-X", chain])

    def table_exists(self) -> bool:
        return self.backend == "nft" and _run(["nft", "list", "table", "ip", self.table]).returncode == 0

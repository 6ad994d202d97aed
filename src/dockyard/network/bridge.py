"""The bridge driver's netlink work: bridges on the host, veth pairs into container namespaces.

Every call opens its own IPRoute in the calling thread (pyroute2 sockets are per thread and per
namespace); in-namespace work goes through netns.run_in.
"""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from dockyard.network import netns

AF_INET = 2
MAIN_TABLE = 254


def _iproute():  # type: ignore[no-untyped-def]
    from pyroute2 import IPRoute

    return IPRoute()


def mac_for(address: IPv4Address) -> str:
    """docker's MAC scheme: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def host_routes() -> list[IPv4Network]:
    """Destinations of the host's main-table IPv4 routes (the default route excluded)."""
    with _iproute() as ipr:
        routes = ipr.get_routes(family=AF_INET, table=MAIN_TABLE)
    nets = []
    for route in routes:
        dst, length = route.get("RTA_DST"), route["dst_len"]
        if dst and length:
            nets.append(IPv4Network(f"{dst}/{length}", strict=False))
    return nets


def link_index(name: str) -> int | None:
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def ensure_bridge(name: str, gateway: IPv4Address, prefixlen: int, mtu: int = 1500) -> None:
    """Create (or adopt) bridge `name` with the gateway address, and bring it up."""
    with _iproute() as ipr:
        if not ipr.link_lookup(ifname=name):
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        index = ipr.link_lookup(ifname=name)[0]
        have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=AF_INET)}
        if (str(gateway), prefixlen) not in have:
            ipr.addr("add", index=index, address=str(gateway), prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")


def delete_link(name: str) -> bool:
    """Delete an interface if it exists (a veth takes its peer with it)."""
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        with contextlib.suppress(Exception):
            ipr.link("del", index=found[0])
        return True


def bridge_ports(bridge: str) -> list[str]:
    """Names of the interfaces enslaved to `bridge`."""
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            return []
        return [link.get("IFLA_IFNAME") for link in ipr.get_links() if link.get("IFLA_MASTER") == found[0]]


def attach(
    bridge: str,
    netns_path: Path,
    host_if: str,
    container_if: str,
    address: IPv4Address,
    prefixlen: int,
    gateway: IPv4Address | None,
    mtu: int = 1500,
) -> str:
    """Connect a namespace to `bridge` with a veth pair; returns the container side's MAC address.

    `gateway` None means no default route (internal networks, or a second network of a container).
    """
    mac = mac_for(address)
    peer_tmp = "dy" + host_if[4:] + "p"
    with _iproute() as ipr:
        ipr.link("add", ifname=host_if, kind="veth", peer=peer_tmp, mtu=mtu)
        try:
            host_index = ipr.link_lookup(ifname=host_if)[0]
            peer_index = ipr.link_lookup(ifname=peer_tmp)[0]
            ipr.link("set", index=host_index, master=ipr.link_lookup(ifname=bridge)[0])
            ipr.link("set", index=peer_index, address=mac)
            fd = open(netns_path, "rb")  # noqa: SIM115 - the fd must stay open across the call
            try:
                ipr.link("set", index=peer_index, net_ns_fd=fd.fileno())
            finally:
                fd.close()
            ipr.link("set", index=host_index, state="up")
        except BaseException:
            with contextlib.suppress(Exception):
                ipr.link("del", ifname=host_if)
            raise

    def configure() -> None:
        with _iproute() as inner:
            index = inner.link_lookup(ifname=peer_tmp)[0]
            inner.link("set", index=index, ifname=container_if)
            inner.addr("add", index=index, address=str(address), prefixlen=prefixlen)
            inner.link("set", index=index, state="up")
            if gateway is not None:
                inner.route("add", dst="0.0.0.0/0", gateway=str(gateway))

    try:
        netns.run_in(netns_path, configure)
    except BaseException:
        delete_link(host_if)
        raise
    return mac


def free_container_ifname(netns_path: Path) -> str:
    """The next ethN name inside the namespace (eth0 for the first network)."""

    def names() -> set[str]:
        with _iproute() as inner:
            return {link.get("IFLA_IFNAME") for link in inner.get_links()}

    taken = netns.run_in(netns_path, names)
    return next(f"eth{n}" for n in range(256) if f"eth{n}" not in taken)


def detach_by_address(netns_path: Path, address: IPv4Address) -> None:
    """Delete the container interface holding `address` (disconnect of a running container)."""

    def remove() -> None:
        with _iproute() as inner:
            for entry in inner.get_addr(family=AF_INET, address=str(address)):
                with contextlib.suppress(Exception):
                    inner.link("del", index=entry["index"])

    netns.run_in(netns_path, remove)

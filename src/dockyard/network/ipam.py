"""IP address management: subnet choice from docker's default pools, and per-network address pools.

Pure logic (no I/O): the network service persists `Pool.to_dict()` with each network record.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dockyard.errors import Conflict, InvalidParameter


def default_pools() -> Iterator[IPv4Network]:
    """docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20 blocks."""
    for second in range(17, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    yield from IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def parse_subnet(text: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {text}") from None
    if not isinstance(net, IPv4Network):
        raise InvalidParameter(f"IPv6 subnets are not supported: {text}")
    if net.prefixlen > 30:
        raise InvalidParameter(f"subnet {text} is too small: at least a /30 is needed")
    return net


def parse_address(text: str, what: str = "IP address") -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {text}") from None


def overlapping(candidate: IPv4Network, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    return next((t for t in taken if candidate.overlaps(t)), None)


def choose_subnet(taken: Iterable[IPv4Network], pools: Iterable[IPv4Network] | None = None) -> IPv4Network:
    """The first default pool that overlaps none of `taken` (networks and host routes)."""
    used = list(taken)
    for candidate in pools if pools is not None else default_pools():
        if overlapping(candidate, used) is None:
            return candidate
    raise Conflict(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )


@dataclass
class Pool:
    """The addresses of one network: gateway reserved, allocations owned by endpoint (container) ids."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None
    allocations: dict[str, str] = field(default_factory=dict)  # address -> owner

    @classmethod
    def create(cls, subnet: str, gateway: str = "", ip_range: str = "") -> Pool:
        """Validate docker's --subnet/--gateway/--ip-range combination."""
        net = parse_subnet(subnet)
        rng = parse_subnet(ip_range) if ip_range else None
        if rng is not None and not rng.subnet_of(net):
            raise InvalidParameter(f"no matching subnet for range {ip_range}")
        if gateway:
            gw = parse_address(gateway, "gateway")
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise InvalidParameter(f"no matching subnet for gateway {gateway}")
        else:
            gw = net.network_address + 1
        return cls(net, gw, rng)

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen

    def _usable(self, address: IPv4Address) -> bool:
        return address in self.subnet and address not in (
            self.subnet.network_address,
            self.subnet.broadcast_address,
            self.gateway,
        )

    def allocate(self, owner: str, preferred: str = "") -> IPv4Address:
        """Reserve `preferred` (docker's --ip) or the lowest free address of the range."""
        if preferred:
            address = parse_address(preferred)
            if address not in self.subnet or address in (self.subnet.network_address, self.subnet.broadcast_address):
                raise InvalidParameter(
                    f"invalid endpoint settings:\nno configured subnet or ip-range contain the IP address {address}"
                )
            holder = self.allocations.get(str(address))
            if address == self.gateway or (holder is not None and holder != owner):
                raise Conflict("Address already in use")
            self.allocations[str(address)] = owner
            return address
        for address in (self.ip_range or self.subnet).hosts():
            if self._usable(address) and str(address) not in self.allocations:
                self.allocations[str(address)] = owner
                return address
        raise Conflict("no available IPv4 addresses on this network's address pools")

    def release(self, owner: str) -> None:
        """Free every address held by `owner`."""
        for address in [a for a, o in self.allocations.items() if o == owner]:
            del self.allocations[address]

    def retain(self, owners: set[str]) -> list[str]:
        """Drop allocations whose owner is not in `owners` (restore); returns the dropped addresses."""
        dropped = [a for a, o in self.allocations.items() if o not in owners]
        for address in dropped:
            del self.allocations[address]
        return dropped

    def owner_address(self, owner: str) -> IPv4Address | None:
        return next((IPv4Address(a) for a, o in self.allocations.items() if o == owner), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "Subnet": str(self.subnet),
            "Gateway": str(self.gateway),
            "IPRange": str(self.ip_range) if self.ip_range else "",
            "Allocations": dict(self.allocations),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Pool:
        pool = cls.create(data["Subnet"], data.get("Gateway", ""), data.get("IPRange", ""))
        pool.allocations = dict(data.get("Allocations") or {})
        return pool

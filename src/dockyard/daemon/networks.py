"""The network service: network records (docker's shapes), and each container's endpoints.

Networks live in <data-root>/networks/<id>.json with their IPAM state (addresses owned by container
ids). A container's endpoints exist while it runs: `setup` (at start) makes its namespace, veths,
addresses, published ports and /etc files; `teardown` (at exit and at rm) undoes all of it. The
firewall table and the DNS answers are derived from the live endpoints, so they are rebuilt, not
patched. `restore` (daemon start) keeps only what running containers use.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dockyard.errors import Conflict, DockyardError, Forbidden, InvalidParameter, NotFound
from dockyard.util.fs import read_json, write_json
from dockyard.util.ids import new_id
from dockyard.util.timefmt import rfc3339_nano

log = logging.getLogger("dockyard.networks")

DEFAULT_DATA_ROOT = "/var/lib/dockyard"
PREDEFINED = ("bridge", "host", "none")
LIST_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}


class NetworkNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found")


@dataclass
class Endpoint:
    """One live attachment of a running container to a bridge network."""

    network_id: str
    endpoint_id: str
    address: IPv4Address
    names: list[str]
    host_if: str


@dataclass
class Sandbox:
    """What a running container holds: its namespace, endpoints and published ports."""

    netns: Path
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # network id -> endpoint
    ports: list[Any] = field(default_factory=list)  # firewall.PortRule


def endpoint_settings(network_id: str = "", aliases: list[str] | None = None, ip: str = "") -> dict[str, Any]:
    """docker's EndpointSettings, not yet connected."""
    return {
        "IPAMConfig": {"IPv4Address": ip} if ip else None,
        "Links": None,
        "Aliases": aliases or None,
        "MacAddress": "",
        "DriverOpts": None,
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


class NetworkService:
    def __init__(self, data_root: Path, exec_root: Path, bip: str = "") -> None:
        self.root = data_root / "networks"
        self.exec_root = exec_root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        default_root = str(data_root) == DEFAULT_DATA_ROOT
        # A private data root (tests, a second daemon) gets its own bridge and table names.
        self.tag = "" if default_root else hashlib.sha256(str(data_root).encode()).hexdigest()[:8]
        self.default_bridge = "dockyard0" if default_root else f"dy{self.tag}0"
        self.bip = bip
        self.containers: Any = None
        self._networks: dict[str, dict[str, Any]] = {}
        self._sandboxes: dict[str, Sandbox] = {}
        self._lock = threading.RLock()
        self._dns: Any = None
        from dockyard.network.firewall import Firewall

        self.firewall = Firewall(self.tag)

    # ------------------------------------------------------------------ records
    def load(self) -> None:
        """Read the records, create the predefined networks, and (re)create every bridge."""
        for path in sorted(self.root.glob("*.json")):
            record = read_json(path)
            if record and record.get("Id"):
                self._networks[record["Id"]] = record
        names = {n["Name"] for n in self._networks.values()}
        if "bridge" not in names:
            self._create_default_bridge()
        elif self.bip:
            self._check_bip()
        for driver, name in (("host", "host"), ("null", "none")):
            if name not in names:
                self._save(self._new_record(name, driver, {"Driver": "default", "Options": None, "Config": []}))
        for net in self._networks.values():
            if net["Driver"] == "bridge":
                self._move_if_taken(net)
                self._ensure_bridge(net)

    def _move_if_taken(self, net: dict[str, Any]) -> None:
        """Our bridges are removed when the daemon stops idle; meanwhile another bridge may have taken
        the default network's subnet. Pick a free one again (docker would fail to start instead)."""
        from dockyard.network import bridge
        from dockyard.network.ipam import Pool, choose_subnet, overlapping, parse_subnet

        if bridge.link_index(self._bridge_name(net)) is not None:
            return
        subnet = parse_subnet(net["IPAMState"]["Subnet"])
        if overlapping(subnet, bridge.host_routes()) is None:
            return
        if net["Name"] != "bridge" or self.bip or net["IPAMState"].get("Allocations"):
            log.warning("network %s: subnet %s overlaps a host route", net["Name"], subnet)
            return
        others = [parse_subnet(n["IPAMState"]["Subnet"]) for n in self._networks.values() if n.get("IPAMState")]
        pool = Pool.create(str(choose_subnet([t for t in others if t != subnet] + bridge.host_routes())))
        net["IPAM"] = self._ipam_section(pool, "")
        net["IPAMState"] = pool.to_dict()
        self._save(net)

    def _create_default_bridge(self) -> None:
        from dockyard.network.ipam import Pool, choose_subnet

        if self.bip:
            subnet, gateway = self._parse_bip()
            pool = Pool.create(subnet, gateway)
        else:
            pool = Pool.create(str(choose_subnet(self._taken_subnets())))
        record = self._new_record("bridge", "bridge", self._ipam_section(pool, ""))
        record["Options"] = {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": self.default_bridge,
            "com.docker.network.driver.mtu": "1500",
        }
        record["IPAMState"] = pool.to_dict()
        self._save(record)

    def _parse_bip(self) -> tuple[str, str]:
        """--bip is the bridge's address with its prefix: 10.20.0.1/24."""
        from ipaddress import ip_interface

        try:
            iface = ip_interface(self.bip)
        except ValueError:
            raise DockyardError(f"invalid --bip: {self.bip}") from None
        return str(iface.network), str(iface.ip)

    def _check_bip(self) -> None:
        subnet, gateway = self._parse_bip()
        net = self.get("bridge")
        config = net["IPAM"]["Config"][0]
        if config["Subnet"] != subnet or config["Gateway"] != gateway:
            if any(self._networks_of(c).get(net["Id"]) for c in self._running()):
                raise DockyardError("cannot change --bip while containers run on the default bridge")
            from dockyard.network.ipam import Pool

            pool = Pool.create(subnet, gateway)
            from dockyard.network import bridge

            bridge.delete_link(self._bridge_name(net))
            net["IPAM"] = self._ipam_section(pool, "")
            net["IPAMState"] = pool.to_dict()
            self._save(net)

    @staticmethod
    def _ipam_section(pool: Any, ip_range: str) -> dict[str, Any]:
        config = {"Subnet": str(pool.subnet), "Gateway": str(pool.gateway)}
        if ip_range:
            config["IPRange"] = ip_range
        return {"Driver": "default", "Options": None, "Config": [config]}

    @staticmethod
    def _new_record(name: str, driver: str, ipam: dict[str, Any]) -> dict[str, Any]:
        return {
            "Name": name,
            "Id": new_id(),
            "Created": rfc3339_nano(),
            "Scope": "local",
            "Driver": driver,
            "EnableIPv6": False,
            "IPAM": ipam,
            "Internal": False,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Options": {},
            "Labels": {},
        }

    def _save(self, record: dict[str, Any]) -> None:
        write_json(self.root / f"{record['Id']}.json", record, 0o600)
        self._networks[record["Id"]] = record

    def _bridge_name(self, net: dict[str, Any]) -> str:
        return (net.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{net['Id'][:12]}"

    def _ensure_bridge(self, net: dict[str, Any]) -> None:
        from dockyard.network import bridge

        pool = self._pool(net)
        bridge.ensure_bridge(self._bridge_name(net), pool.gateway, pool.prefixlen)

    def _pool(self, net: dict[str, Any]) -> Any:
        from dockyard.network.ipam import Pool

        return Pool.from_dict(net["IPAMState"])

    def _taken_subnets(self) -> list[Any]:
        from ipaddress import IPv4Network

        from dockyard.network.bridge import host_routes

        ours = [IPv4Network(n["IPAMState"]["Subnet"]) for n in self._networks.values() if n.get("IPAMState")]
        return ours + host_routes()

    def get(self, ref: str) -> dict[str, Any]:
        """docker's lookup: full id, exact name, then a unique id prefix."""
        with self._lock:
            if ref in self._networks:
                return self._networks[ref]
            for net in self._networks.values():
                if net["Name"] == ref:
                    return net
            found = [n for i, n in self._networks.items() if ref and i.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found on id prefix)")
        raise NetworkNotFound(ref)

    # ------------------------------------------------------------------ API: create, list, inspect, rm
    def create(self, body: dict[str, Any]) -> dict[str, str]:
        from dockyard.network.ipam import Pool, choose_subnet, overlapping, parse_subnet

        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("network name is required")  # docker: invalid name
        driver = body.get("Driver") or "bridge"
        with self._lock:
            if any(n["Name"] == name for n in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            if name in PREDEFINED:
                raise Forbidden(f"{name} is a pre-defined network and cannot be created")
            if driver != "bridge":
                raise NotFound(f'plugin "{driver}" not found')
            configs = (body.get("IPAM") or {}).get("Config") or []
            config = configs[0] if configs else {}
            taken = self._taken_subnets()
            if config.get("Subnet"):
                subnet = parse_subnet(config["Subnet"])
                ours = [parse_subnet(n["IPAMState"]["Subnet"]) for n in self._networks.values() if n.get("IPAMState")]
                if overlapping(subnet, ours) is not None:
                    raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")
                pool = Pool.create(config["Subnet"], config.get("Gateway") or "", config.get("IPRange") or "")
            else:
                if config.get("Gateway") or config.get("IPRange"):
                    raise InvalidParameter("gateway and ip-range need a subnet")
                pool = Pool.create(str(choose_subnet(taken)))
            record = self._new_record(name, "bridge", self._ipam_section(pool, config.get("IPRange") or ""))
            record["Internal"] = bool(body.get("Internal"))
            record["Attachable"] = bool(body.get("Attachable"))
            record["Options"] = dict(body.get("Options") or {})
            record["Labels"] = dict(body.get("Labels") or {})
            record["IPAMState"] = pool.to_dict()
            bridge_name = self._bridge_name(record)
            if len(bridge_name) > 15:
                raise InvalidParameter(f"bridge name {bridge_name} is longer than 15 characters")
            try:
                self._ensure_bridge(record)
                self._save(record)
                self._apply_firewall()
            except BaseException:
                self._networks.pop(record["Id"], None)
                (self.root / f"{record['Id']}.json").unlink(missing_ok=True)
                from dockyard.network import bridge

                bridge.delete_link(bridge_name)
                raise
        return {"Id": record["Id"], "Warning": ""}

    def inspect(self, ref: str) -> dict[str, Any]:
        net = self.get(ref)
        with self._lock:
            out = {k: v for k, v in net.items() if k != "IPAMState"}
            containers: dict[str, Any] = {}
            for cid, box in self._sandboxes.items():
                ep = box.endpoints.get(net["Id"])
                if ep is None:
                    continue
                c = self._container(cid)
                settings = self._networks_of(c).get(net["Name"], {}) if c else {}
                containers[cid] = {
                    "Name": c.name.lstrip("/") if c else "",
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": settings.get("MacAddress", ""),
                    "IPv4Address": f"{ep.address}/{self._pool(net).prefixlen}",
                    "IPv6Address": "",
                }
            out["Containers"] = containers
            return out

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        from dockyard.daemon.filters import check_keys, labels_match

        filters = filters or {}
        check_keys(filters, LIST_FILTERS)
        out = []
        for net in sorted(self._networks.values(), key=lambda n: n["Created"]):
            builtin = net["Name"] in PREDEFINED
            checks = {
                "driver": lambda v, n=net: n["Driver"] == v,
                "id": lambda v, n=net: n["Id"].startswith(v),
                "name": lambda v, n=net: v in n["Name"],
                "scope": lambda v, n=net: n["Scope"] == v,
                "type": lambda v, b=builtin: (v == "builtin") == b,
                "dangling": lambda v, n=net, b=builtin: (v in ("true", "1")) == (not b and not self._in_use(n)),
            }
            if not all(any(checks[k](v) for v in vals) for k, vals in filters.items() if k in checks):
                continue
            if "label" in filters and not labels_match(net.get("Labels") or {}, {"label": filters["label"]}):
                continue
            item = self.inspect(net["Id"])
            item["Containers"] = {}
            out.append(item)
        return out

    def _in_use(self, net: dict[str, Any]) -> bool:
        return any(net["Name"] in self._networks_of(c) for c in self._all_containers())

    def remove(self, ref: str) -> None:
        net = self.get(ref)
        with self._lock:
            if net["Name"] in PREDEFINED:
                raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
            if any(net["Id"] in box.endpoints for box in self._sandboxes.values()):
                raise Forbidden(
                    f"error while removing network: network {net['Name']} id {net['Id']} has active endpoints"
                )
            from dockyard.network import bridge

            bridge.delete_link(self._bridge_name(net))
            (self.root / f"{net['Id']}.json").unlink(missing_ok=True)
            del self._networks[net["Id"]]
            self._apply_firewall()

    def prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        from dockyard.daemon.filters import PRUNE_FILTERS, check_keys, labels_match, parse_timestamp
        from dockyard.util.timefmt import parse_rfc3339

        filters = filters or {}
        check_keys(filters, PRUNE_FILTERS)
        until = [parse_timestamp(v) for v in filters.get("until", [])]
        deleted = []
        for net in list(self._networks.values()):
            if net["Name"] in PREDEFINED or self._in_use(net):
                continue
            if until and parse_rfc3339(net["Created"]) >= min(until):
                continue
            if not labels_match(net.get("Labels") or {}, filters):
                continue
            with contextlib.suppress(DockyardError):
                self.remove(net["Id"])
                deleted.append(net["Name"])
        return {"NetworksDeleted": deleted or None}

    # ------------------------------------------------------------------ containers: create
    def attach_containers(self, containers: Any) -> None:
        self.containers = containers

    def _all_containers(self) -> list[Any]:
        return self.containers.all() if self.containers is not None else []

    def _running(self) -> list[Any]:
        return [c for c in self._all_containers() if c.running]

    def _container(self, cid: str) -> Any:
        try:
            return self.containers.get(cid) if self.containers is not None else None
        except DockyardError:
            return None

    @staticmethod
    def _networks_of(c: Any) -> dict[str, Any]:
        return c.record["NetworkSettings"].get("Networks") or {}

    def plan_create(self, host_config: dict[str, Any], networking: dict[str, Any] | None) -> dict[str, Any]:
        """Validate NetworkMode and the endpoint configs of a new container; returns its Networks map."""
        mode = host_config.get("NetworkMode") or "default"
        if mode == "default":
            mode = host_config["NetworkMode"] = "bridge"
        if mode.startswith("container:"):  # another container's namespace: no networks of its own
            if not mode.partition(":")[2]:
                raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
            return {}  # the container is looked up at start, as moby does (a 404 here would make clients pull)
        # the docker CLI keys the endpoint of `--network default` (the default) as "default"
        endpoints = {
            ("bridge" if key == "default" else key): value
            for key, value in ((networking or {}).get("EndpointsConfig") or {}).items()
        }
        wanted = [mode, *[n for n in endpoints if n != mode]]
        out: dict[str, Any] = {}
        for ref in wanted:
            net = self.get(ref)
            if net["Name"] in out:
                continue
            cfg = endpoints.get(ref) or endpoints.get(net["Name"]) or {}
            ip = (cfg.get("IPAMConfig") or {}).get("IPv4Address") or ""
            aliases = list(cfg.get("Aliases") or [])
            self._check_endpoint_config(net, ip, aliases)
            if net["Driver"] in ("host", "null") and len(wanted) > 1:
                raise InvalidParameter(
                    "container cannot be disconnected from host network or connected to host network"
                )
            out[net["Name"]] = endpoint_settings(net["Id"], aliases, ip)
        host_config["NetworkMode"] = self.get(mode)["Name"] if mode not in ("host", "none", "bridge") else mode
        return out

    def _check_endpoint_config(self, net: dict[str, Any], ip: str, aliases: list[str]) -> None:
        if net["Name"] == "bridge" and (ip or aliases):
            what = "user specified IP address" if ip else "network-scoped alias"
            raise InvalidParameter(f"{what} is supported only for user defined networks")
        if ip:
            if net["Driver"] != "bridge":
                raise InvalidParameter("user specified IP address is supported only for user defined networks")
            from dockyard.network.ipam import parse_address

            address = parse_address(ip)
            pool = self._pool(net)
            if address not in pool.subnet or address in (pool.subnet.network_address, pool.subnet.broadcast_address):
                raise InvalidParameter(
                    f"invalid endpoint settings:\nno configured subnet or ip-range contain the IP address {ip}"
                )

    # ------------------------------------------------------------------ containers: start / exit
    def setup(self, c: Any) -> str | None:
        """Make the container's network ready before its runtime starts; returns the netns path to
        join (None: the runtime's own namespace, for host/none). Undoes everything on failure."""
        mode = c.host_config.get("NetworkMode") or "bridge"
        try:
            if mode in ("host", "none"):
                self._write_etc(c, [], embedded_dns=False)
                return None
            if mode.startswith("container:"):
                return self._join_namespace_of(c, mode)
            with self._lock:
                return self._setup_bridged(c)
        except BaseException:
            self.teardown(c)
            raise

    def _join_namespace_of(self, c: Any, mode: str) -> str:
        """`--network container:X`: X's network namespace, and its hostname and /etc files, as moby's
        initializeNetworking shares them; X must be running."""
        owner = self.containers.get(mode.partition(":")[2])
        if owner.id == c.id:
            raise InvalidParameter("cannot join own network")
        if not owner.running:
            raise Conflict(f"cannot join network of a non running container: {mode.partition(':')[2]}")
        for key in ("HostnamePath", "HostsPath", "ResolvConfPath"):
            c.record[key] = owner.record.get(key) or ""
        c.config["Hostname"] = owner.config.get("Hostname") or owner.id[:12]
        c.config["Domainname"] = owner.config.get("Domainname") or ""
        c.save(durable=False)
        return owner.record["NetworkSettings"].get("SandboxKey") or f"/proc/{owner.state['Pid']}/ns/net"

    def _setup_bridged(self, c: Any) -> str:
        from dockyard.network import netns

        path = self.exec_root / "netns" / c.id
        netns.remove(path)
        netns.create(path)
        box = self._sandboxes[c.id] = Sandbox(path)
        for name, settings in self._networks_of(c).items():
            self._connect_endpoint(c, box, self.get(settings.get("NetworkID") or name), settings)
        self._publish(c, box)
        if box.ports:  # the bridges' rules do not change when a container starts
            self._apply_firewall()
        embedded = self._needs_embedded_dns(box)
        if embedded:
            self._dns_server().add(c.id, path)
        self._write_etc(c, self._addresses(box), embedded_dns=embedded)
        ns = c.record["NetworkSettings"]
        ns["SandboxID"] = hashlib.sha256(c.id.encode()).hexdigest()
        ns["SandboxKey"] = str(path)
        c.save(durable=False)
        return str(path)

    def _connect_endpoint(self, c: Any, box: Sandbox, net: dict[str, Any], settings: dict[str, Any]) -> None:
        from dockyard.network import bridge

        pool = self._pool(net)
        preferred = (settings.get("IPAMConfig") or {}).get("IPv4Address") or ""
        address = pool.allocate(c.id, preferred)
        net["IPAMState"] = pool.to_dict()
        self._save(net)
        endpoint_id = new_id()
        host_if = "veth" + endpoint_id[:7]
        first = not box.endpoints
        try:
            ifname = "eth0" if first else bridge.free_container_ifname(box.netns)
            gateway = None if (net["Internal"] or not first) else pool.gateway
            mac = bridge.attach(self._bridge_name(net), box.netns, host_if, ifname, address, pool.prefixlen, gateway)
        except BaseException:
            pool.release(c.id)
            net["IPAMState"] = pool.to_dict()
            self._save(net)
            raise
        names = [c.name.lstrip("/"), *(settings.get("Aliases") or []), c.id[:12]]
        box.endpoints[net["Id"]] = Endpoint(net["Id"], endpoint_id, address, names, host_if)
        settings.update(
            NetworkID=net["Id"],
            EndpointID=endpoint_id,
            Gateway=str(pool.gateway),
            IPAddress=str(address),
            IPPrefixLen=pool.prefixlen,
            MacAddress=mac,
            DNSNames=names if net["Name"] != "bridge" else None,
        )
        if net["Name"] == "bridge":
            c.record["NetworkSettings"].update(
                EndpointID=endpoint_id, Gateway=str(pool.gateway), IPAddress=str(address),
                IPPrefixLen=pool.prefixlen, MacAddress=mac,
            )  # fmt: skip

    def _publish(self, c: Any, box: Sandbox) -> None:
        """Bind every published port, start the userland proxy, remember the DNAT rules."""
        from dockyard.network import ports, proxy
        from dockyard.network.firewall import PortRule

        requests = ports.requests_from(c.host_config, c.config)
        published: dict[str, list[dict[str, str]] | None] = dict.fromkeys(ports.exposed_keys(c.host_config, c.config))
        if not requests or not box.endpoints:
            c.record["NetworkSettings"]["Ports"] = published
            return
        ep = next(iter(box.endpoints.values()))
        bridge_name = self._bridge_name(self._networks[ep.network_id])
        listeners = []
        try:
            for req in requests:
                try:
                    sock = ports.bind(req)
                except ports.PortTaken as exc:
                    ours = any(
                        r.host_port == exc.port and r.proto == req.proto
                        for b in self._sandboxes.values()
                        for r in b.ports
                    )
                    raise proxy.port_in_use_error(
                        c.name.lstrip("/"), ep.endpoint_id, req.proto, req.host_ip, exc.port, ours
                    ) from None
                listeners.append((sock, req.proto, (str(ep.address), req.container_port)))
                host_port = sock.getsockname()[1]
                host_ip = req.host_ip or "0.0.0.0"
                key = f"{req.container_port}/{req.proto}"
                published.setdefault(key, None)
                published[key] = [*(published[key] or []), {"HostIp": host_ip, "HostPort": str(host_port)}]
                box.ports.append(
                    PortRule(req.proto, host_ip, host_port, str(ep.address), req.container_port, bridge_name)
                )
            proxy.spawn(listeners, c.dir / "proxy.pid", c.dir / "proxy.log")
        finally:
            for sock, _, _ in listeners:
                sock.close()
        c.record["NetworkSettings"]["Ports"] = published

    def _needs_embedded_dns(self, box: Sandbox) -> bool:
        """User-defined networks resolve names through 127.0.0.11; the default bridge does not."""
        return any(self._networks[e.network_id]["Name"] != "bridge" for e in box.endpoints.values())

    @staticmethod
    def _addresses(box: Sandbox) -> list[str]:
        return [str(e.address) for e in box.endpoints.values()]

    def _write_etc(self, c: Any, addresses: list[str], embedded_dns: bool, live: bool = False) -> None:
        """The container's /etc/hosts, /etc/hostname and /etc/resolv.conf. `live`: the container runs
        and has them bind-mounted (connect, disconnect): hosts and resolv.conf change in place."""
        from dockyard.network import etcfiles

        hc = c.host_config
        hostname = c.config.get("Hostname") or c.id[:12]
        hosts = etcfiles.hosts_content(hostname, addresses, list(hc.get("ExtraHosts") or []))
        resolv = etcfiles.resolv_content(
            embedded_dns, list(hc.get("Dns") or []), list(hc.get("DnsSearch") or []), list(hc.get("DnsOptions") or [])
        )
        if live:
            etcfiles.rewrite_in_place(c.record["HostsPath"], hosts)
            etcfiles.rewrite_in_place(c.record["ResolvConfPath"], resolv)
            return
        c.record.update(etcfiles.write_files(c.dir, hostname, hosts, resolv))
        c.save(durable=False)  # start-time state: set again at every start, reconciled on restore

    def teardown(self, c: Any) -> None:
        """Release everything the container's network held (idempotent: exit, failed start, rm)."""
        from dockyard.network import bridge, netns, proxy

        with self._lock:
            proxy.stop(c.dir / "proxy.pid")
            box = self._sandboxes.pop(c.id, None)
            if self._dns is not None:
                self._dns.remove(c.id)
            veths = [ep.host_if for ep in box.endpoints.values()] if box else []
            if veths:  # deleting a veth waits for the kernel (~20 ms): not on the exit path
                threading.Thread(target=lambda: [bridge.delete_link(v) for v in veths], daemon=True).start()
            for net in self._networks.values():
                if net.get("IPAMState") and c.id in net["IPAMState"].get("Allocations", {}).values():
                    pool = self._pool(net)
                    pool.release(c.id)
                    net["IPAMState"] = pool.to_dict()
                    self._save(net)
            netns.remove(self.exec_root / "netns" / c.id)
            if box is not None and box.ports:
                self._apply_firewall()
            self._clear_settings(c)

    @staticmethod
    def _clear_settings(c: Any) -> None:
        """A stopped container shows no addresses, as docker's inspect does."""
        ns = c.record["NetworkSettings"]
        ns.update(
            SandboxID="", SandboxKey="", Ports={}, EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress=""
        )
        for settings in (ns.get("Networks") or {}).values():
            settings.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="", DNSNames=None)

    # ------------------------------------------------------------------ connect / disconnect
    def connect(self, ref: str, container_ref: str, config: dict[str, Any] | None) -> None:
        c = self.containers.get(container_ref)
        net = self.get(ref)
        config = config or {}
        ip = (config.get("IPAMConfig") or {}).get("IPv4Address") or ""
        aliases = list(config.get("Aliases") or [])
        with c.lock, self._lock:
            networks = c.record["NetworkSettings"].setdefault("Networks", {})
            mode = c.host_config.get("NetworkMode") or ""
            if mode.startswith("container:"):
                raise Forbidden(
                    "container sharing network namespace with another container or host cannot be connected to any "
                    "other network"
                )
            if mode in ("host", "none") or net["Driver"] in ("host", "null"):
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            if net["Name"] in networks:
                raise Forbidden(f"endpoint with name {c.name.lstrip('/')} already exists in network {net['Name']}")
            self._check_endpoint_config(net, ip, aliases)
            settings = endpoint_settings(net["Id"], aliases, ip)
            box = self._sandboxes.get(c.id)
            if c.running and box is not None:
                self._connect_endpoint(c, box, net, settings)
                self._apply_firewall()
                if net["Name"] != "bridge":
                    self._dns_server().add(c.id, box.netns)
                self._write_etc(c, self._addresses(box), self._needs_embedded_dns(box), live=True)
            networks[net["Name"]] = settings
            c.save()

    def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        from dockyard.network import bridge

        c = self.containers.get(container_ref)
        net = self.get(ref)
        with c.lock, self._lock:
            networks = c.record["NetworkSettings"].get("Networks") or {}
            if net["Name"] not in networks:
                raise Forbidden(f"container {c.id} is not connected to network {net['Name']}")
            if net["Driver"] in ("host", "null"):
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            box = self._sandboxes.get(c.id)
            ep = box.endpoints.pop(net["Id"], None) if box else None
            if ep is not None:
                bridge.delete_link(ep.host_if)
                pool = self._pool(net)
                pool.release(c.id)
                net["IPAMState"] = pool.to_dict()
                self._save(net)
                self._apply_firewall()
                self._write_etc(c, self._addresses(box), self._needs_embedded_dns(box), live=True)
            del networks[net["Name"]]  # NetworkMode stays as it is, as docker leaves it (compose v1 reconnects)
            c.save()

    # ------------------------------------------------------------------ derived state
    def _apply_firewall(self) -> None:
        from dockyard.network.firewall import BridgeRule
        from dockyard.network.ipam import parse_subnet

        bridges = [
            BridgeRule(self._bridge_name(n), parse_subnet(n["IPAMState"]["Subnet"]), bool(n["Internal"]))
            for n in self._networks.values()
            if n["Driver"] == "bridge"
        ]
        rules = [r for box in self._sandboxes.values() for r in box.ports]
        self.firewall.apply(bridges, rules)

    def _dns_server(self) -> Any:
        if self._dns is None:
            from dockyard.network.dns import DnsServer

            self._dns = DnsServer(self.resolve)
        return self._dns

    def resolve(self, container_id: str, name: str) -> list[str] | None:
        """Answer a DNS name for a container: peers on its user networks by name, alias or short id."""
        name = name.rstrip(".").lower()
        with self._lock:
            box = self._sandboxes.get(container_id)
            if box is None:
                return None
            found: list[str] = []
            for net_id in box.endpoints:
                if self._networks.get(net_id, {}).get("Name") == "bridge":
                    continue
                for other in self._sandboxes.values():
                    ep = other.endpoints.get(net_id)
                    if ep is not None and name in (n.lower() for n in ep.names):
                        found.append(str(ep.address))
            return found or None

    # ------------------------------------------------------------------ restore / shutdown
    def restore(self) -> None:
        """After the containers were restored: rebuild the live endpoints of running containers from
        their records, and drop what no running container holds (addresses, veths, namespaces, proxies)."""
        from dockyard.network import bridge, netns, proxy

        with self._lock:
            running = {c.id: c for c in self._running()}
            for cid, c in running.items():
                path = self.exec_root / "netns" / cid
                if not netns.is_mounted(path):
                    continue
                box = Sandbox(path)
                for name, settings in self._networks_of(c).items():
                    net = self._networks.get(settings.get("NetworkID") or "") or self._by_name(name)
                    if net is None or not settings.get("IPAddress"):
                        continue
                    box.endpoints[net["Id"]] = Endpoint(
                        net["Id"], settings["EndpointID"], IPv4Address(settings["IPAddress"]),
                        list(settings.get("DNSNames") or [c.name.lstrip("/")]), "veth" + settings["EndpointID"][:7],
                    )  # fmt: skip
                box.ports = self._port_rules_of(c, box)
                self._sandboxes[cid] = box
                if any(self._networks[n]["Name"] != "bridge" for n in box.endpoints):
                    with contextlib.suppress(OSError):
                        self._dns_server().add(cid, path)
            for net in self._networks.values():
                if net.get("IPAMState"):
                    pool = self._pool(net)
                    if pool.retain(set(self._sandboxes)):
                        net["IPAMState"] = pool.to_dict()
                        self._save(net)
                    live = {ep.host_if for box in self._sandboxes.values() for ep in box.endpoints.values()}
                    for port in bridge.bridge_ports(self._bridge_name(net)):
                        if port not in live:
                            bridge.delete_link(port)
            for path in (self.exec_root / "netns").glob("*"):
                if path.name not in self._sandboxes:
                    netns.remove(path)
            for c in self._all_containers():
                if c.id not in self._sandboxes:
                    proxy.stop(c.dir / "proxy.pid")
            self._apply_firewall()

    def _by_name(self, name: str) -> dict[str, Any] | None:
        return next((n for n in self._networks.values() if n["Name"] == name), None)

    def _port_rules_of(self, c: Any, box: Sandbox) -> list[Any]:
        from dockyard.network.firewall import PortRule

        if not box.endpoints:
            return []
        ep = next(iter(box.endpoints.values()))
        bridge_name = self._bridge_name(self._networks[ep.network_id])
        rules = []
        for key, bindings in (c.record["NetworkSettings"].get("Ports") or {}).items():
            port, _, proto = key.partition("/")
            for b in bindings or []:
                rules.append(PortRule(proto, b["HostIp"], int(b["HostPort"]), str(ep.address), int(port), bridge_name))
        return rules

    def shutdown(self) -> None:
        """Daemon stop: with no container on our networks, leave the host as we found it (bridges and
        firewall table are made again at the next start); otherwise keep everything for them."""
        from dockyard.network import bridge

        with self._lock:
            if self._dns is not None:
                self._dns.close()
            if self._sandboxes:
                return
            for net in self._networks.values():
                if net["Driver"] == "bridge":
                    bridge.delete_link(self._bridge_name(net))
            self.firewall.remove()


def check_network_mode(config: dict[str, Any], host_config: dict[str, Any]) -> None:
    """moby's validateNetContainerMode on the request (before the image's config is merged): what
    a container sharing another's network namespace cannot have of its own."""
    mode = host_config.get("NetworkMode") or ""
    if mode.startswith("container:"):
        conflicts = [
            (config.get("Hostname"), "conflicting options: hostname and the network mode"),
            (host_config.get("Links"), "conflicting options: container type network can't be used with links. "
             "This would result in undefined behavior"),
            (host_config.get("Dns"), "conflicting options: dns and the network mode"),
            (host_config.get("ExtraHosts"), "conflicting options: custom host-to-IP mapping and the network mode"),
            (config.get("MacAddress"), "conflicting options: mac-address and the network mode"),
            (host_config.get("PortBindings") or host_config.get("PublishAllPorts"),
             "conflicting options: port publishing and the container type network mode"),
            (config.get("ExposedPorts"), "conflicting options: port exposing and the container type network mode"),
        ]  # fmt: skip
        for present, message in conflicts:
            if present:
                raise InvalidParameter(message)
    elif mode == "host" and config.get("MacAddress"):
        raise InvalidParameter("conflicting options: mac-address and the network mode")

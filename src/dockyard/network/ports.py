"""Published ports: from HostConfig (PortBindings, PublishAllPorts) to bound host sockets."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidParameter


@dataclass(frozen=True)
class PortRequest:
    proto: str
    container_port: int
    host_ip: str
    host_ports: tuple[int, int]  # inclusive range; (0, 0) = ephemeral


def _port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameter(f"invalid port specification: {key!r}".replace("'", '"'))
    return int(port), proto


def _host_range(text: str) -> tuple[int, int]:
    if not text:
        return (0, 0)
    low, _, high = text.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise InvalidParameter(f"invalid hostPort: {text}") from None
    if not (0 <= lo <= hi < 65536):
        raise InvalidParameter(f"invalid hostPort: {text}")
    return (lo, hi)


def requests_from(host_config: dict[str, Any], config: dict[str, Any]) -> list[PortRequest]:
    """Every host binding to make: explicit PortBindings, then -P for the other exposed ports."""
    out: list[PortRequest] = []
    bindings = host_config.get("PortBindings") or {}
    for key, entries in bindings.items():
        port, proto = _port_key(key)
        for entry in entries or [{}]:
            host_ip = (entry or {}).get("HostIp") or ""
            out.append(PortRequest(proto, port, host_ip, _host_range((entry or {}).get("HostPort") or "")))
    if host_config.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            if key not in bindings:
                port, proto = _port_key(key)
                out.append(PortRequest(proto, port, "", (0, 0)))
    return out


def exposed_keys(host_config: dict[str, Any], config: dict[str, Any]) -> list[str]:
    keys = list(config.get("ExposedPorts") or {})
    keys += [k for k in host_config.get("PortBindings") or {} if k not in keys]
    return [k if "/" in k else k + "/tcp" for k in keys]


class PortTaken(Exception):
    """The host port could not be bound (`foreign` when no port of ours holds it)."""

    def __init__(self, request: PortRequest, port: int) -> None:
        super().__init__(f"{request.host_ip or '0.0.0.0'}:{port}")
        self.request = request
        self.port = port


def bind(request: PortRequest) -> socket.socket:
    """Bind the first free port of the request's range (an ephemeral one for 0)."""
    from dockyard.network.proxy import bind_listener

    low, high = request.host_ports
    for port in range(low, high + 1):
        try:
            return bind_listener(request.proto, request.host_ip, port)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidParameter(
                    f"Error starting userland proxy: listen {request.proto} {request.host_ip}:{port}: "
                    "bind: cannot assign requested address"
                ) from None
            if exc.errno != errno.EADDRINUSE:
                raise
    raise PortTaken(request, low)

"""Assemble a registry server from its configuration (what `dockyard registry serve` runs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from dockyard.distribution.server.app import RegistryApp
from dockyard.distribution.server.auth import Acl, Authorizer, BasicAccess, Htpasswd, OpenAccess
from dockyard.distribution.server.httpd import HTTPServer
from dockyard.distribution.server.storage import Storage

COMMON_HEADERS = {"Docker-Distribution-Api-Version": "registry/2.0", "X-Content-Type-Options": "nosniff"}


@dataclass
class RegistryConfig:
    root: str
    host: str = "127.0.0.1"
    port: int = 5000
    htpasswd: str | None = None
    config: str | None = None  # JSON file: {"acl": [rules]}
    tls_cert: str | None = None
    tls_key: str | None = None
    token_realm: str | None = None
    token_issuer: str = "dockyard-registry"
    token_service: str | None = None
    token_key: str | None = None


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (loopback by default: a registry is not exposed by accident)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid address {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_acl(path: str | None) -> Acl:
    if not path:
        return Acl(None)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    rules = doc.get("acl") if isinstance(doc, dict) else None
    if rules is not None and not isinstance(rules, list):
        raise ValueError(f"{path}: 'acl' must be a list of rules")
    return Acl(rules)


def create_server(config: RegistryConfig) -> HTTPServer:
    storage = Storage(config.root)
    acl = load_acl(config.config)
    htpasswd = Htpasswd(config.htpasswd) if config.htpasswd else None
    access: Authorizer
    token_path = issuer = None
    if config.token_realm:
        from dockyard.distribution.server.token import Signer, TokenAccess, load_or_create_key

        if not config.token_key:
            raise ValueError("token auth needs --token-key (a PEM private key file; created when missing)")
        service = config.token_service or ""  # default: the bound address, set below
        issuer = TokenAccess(
            Signer(load_or_create_key(config.token_key)),
            config.token_realm,
            service,
            config.token_issuer,
            acl,
            htpasswd,
        )
        access = issuer
        token_path = urlsplit(config.token_realm).path or "/"
        if token_path.startswith(("/v2/", "/v1/")) or token_path == "/v2":
            raise ValueError("the token realm's path must not be under /v1/ or /v2/")
    elif htpasswd is not None:
        access = BasicAccess(htpasswd, acl)
    else:
        access = OpenAccess()
    ssl_context = None
    if config.tls_cert:
        import ssl

        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
    app = RegistryApp(storage, access, token_path, issuer)
    server = HTTPServer((config.host, config.port), app, ssl_context, COMMON_HEADERS)
    if issuer is not None and not config.token_service:
        host, port = server.server_address
        issuer.service = f"{host}:{port}"
    return server

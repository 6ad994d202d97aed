"""docker-compatible credential files: `{"auths": {"<server>": {"auth": base64("user:password")}}}`.

dockyard writes its own file (~/.dockyard/config.json, or $DOCKYARD_CONFIG/config.json) and also reads
docker's (~/.docker/config.json, or $DOCKER_CONFIG/config.json), so an existing `docker login` works.
Stdlib only: the CLI imports this on every pull and push.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_INDEX = "https://index.docker.io/v1/"
_HUB_ALIASES = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1/",
    "https://index.docker.io/v1",
    "https://index.docker.io",
    "https://registry-1.docker.io",
}


@dataclass(frozen=True)
class AuthConfig:
    """One registry's credentials (the Engine API's AuthConfig)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    server_address: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    def to_api(self) -> dict[str, str]:
        """The JSON shape of X-Registry-Auth and POST /auth."""
        out = {"username": self.username, "password": self.password, "serveraddress": self.server_address}
        if self.identity_token:
            out["identitytoken"] = self.identity_token
        return out

    @classmethod
    def from_api(cls, data: dict[str, Any] | None) -> AuthConfig:
        data = {str(k).lower(): v for k, v in (data or {}).items()}
        return cls(
            str(data.get("username") or ""),
            str(data.get("password") or ""),
            str(data.get("identitytoken") or ""),
            str(data.get("serveraddress") or ""),
        )


def registry_key(server: str) -> str:
    """The `auths` key of a registry: docker's Hub index URL, otherwise the bare host[:port]."""
    server = server.strip()
    if not server or server in _HUB_ALIASES:
        return DOCKER_HUB_INDEX
    for prefix in ("https://", "http://"):
        server = server.removeprefix(prefix)
    return server.split("/", 1)[0]


def domain_of_server(server: str) -> str:
    """The reference domain a login server names (`https://index.docker.io/v1/` → docker.io)."""
    key = registry_key(server)
    return DOCKER_HUB_DOMAIN if key == DOCKER_HUB_INDEX else key


def key_for_domain(domain: str) -> str:
    return registry_key(domain)


def dockyard_config_path() -> Path:
    base = os.environ.get("DOCKYARD_CONFIG") or os.path.join(os.path.expanduser("~"), ".dockyard")
    return Path(base) / "config.json"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _decode_entry(entry: Any, server: str) -> AuthConfig | None:
    if not isinstance(entry, dict):
        return None
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
    auth = AuthConfig(username, password, str(entry.get("identitytoken") or ""), server)
    return None if auth.empty else auth


def _lookup(data: dict[str, Any], key: str) -> AuthConfig | None:
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return None
    for server, entry in auths.items():
        if registry_key(str(server)) == key:
            found = _decode_entry(entry, str(server))
            if found is not None:
                return found
    return None


def load_auth(server_or_domain: str) -> AuthConfig | None:
    """Credentials for a registry: dockyard's file first, then docker's."""
    key = registry_key(server_or_domain)
    for path in (dockyard_config_path(), docker_config_path()):
        found = _lookup(_read(path), key)
        if found is not None:
            return found
    return None


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomic, private (0600): the file holds passwords."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_auth(server: str, auth: AuthConfig) -> Path:
    """Store credentials under the registry's key in dockyard's config file; returns its path."""
    path = dockyard_config_path()
    data = _read(path)
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        auths = data["auths"] = {}
    key = registry_key(server)
    for other in [s for s in auths if registry_key(str(s)) == key]:
        del auths[other]
    entry: dict[str, str] = {}
    if auth.identity_token:
        entry["identitytoken"] = auth.identity_token
    else:
        entry["auth"] = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    auths[key] = entry
    _write(path, data)
    return path


def remove_auth(server: str) -> bool:
    """Forget a registry's credentials in dockyard's file; returns whether any were stored."""
    path = dockyard_config_path()
    data = _read(path)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return False
    key = registry_key(server)
    matching = [s for s in auths if registry_key(str(s)) == key]
    for server_name in matching:
        del auths[server_name]
    if matching:
        _write(path, data)
    return bool(matching)

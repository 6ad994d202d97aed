"""Who may do what: htpasswd (bcrypt) accounts, a per-repository ACL, and Basic or Bearer challenges.

The ACL is a list of rules `{"account": ..., "name": ..., "actions": [...]}`: `account` is a user,
`*` (any authenticated user) or `anonymous`; `name` is an fnmatch pattern over repository names
(`*` crosses `/`; `${account}` stands for the user's own name); `actions` are pull, push, delete
or `*`. A request gets the union of the rules that match. Without an ACL every authenticated user
may do everything and anonymous users nothing (distribution's htpasswd behaviour).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

from dockyard.distribution.server.errors import RegistryError

ALL_ACTIONS = ("pull", "push", "delete")
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Scope:
    """`repository:<name>:<actions>` or `registry:catalog:*`, as in Docker's token spec."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name or not actions:
            return None
        return cls(kind, name, tuple(a for a in actions.split(",") if a))


class Htpasswd:
    """`user:bcrypt-hash` lines (what `htpasswd -B` writes); reloaded when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime = -1.0
        self._users: dict[str, bytes] = {}
        self._verified: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        mtime = os.stat(self.path).st_mtime
        if mtime == self._mtime:
            return
        users = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                user, sep, hashed = line.strip().partition(":")
                if sep and not user.startswith("#"):
                    users[user] = hashed.encode()
        with self._lock:
            self._users, self._verified, self._mtime = users, {}, mtime

    def verify(self, user: str, password: str) -> bool:
        """bcrypt is slow by design: a successful check is remembered (keyed by a hash of the pair)."""
        import bcrypt

        self._load()
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if self._verified.get(key) == user:
            return True
        hashed = self._users.get(user)
        if hashed is None or not hashed.startswith((b"$2a$", b"$2b$", b"$2y$")):
            return False
        try:
            ok = bcrypt.checkpw(password.encode(), hashed.replace(b"$2y$", b"$2b$", 1))
        except ValueError:
            return False
        if ok:
            with self._lock:
                if len(self._verified) > 10000:
                    self._verified.clear()
                self._verified[key] = user
        return ok


def hash_password(password: str, rounds: int = 10) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


class Acl:
    """The access rules; `None` rules mean "authenticated users may do everything"."""

    def __init__(self, rules: list[dict[str, Any]] | None) -> None:
        self.rules = rules
        for rule in rules or []:
            if not isinstance(rule, dict) or not isinstance(rule.get("actions", []), list):
                raise ValueError(f"invalid ACL rule: {rule!r}")

    def pullable(self, account: str | None, names: list[str]) -> list[str]:
        return [n for n in names if "pull" in self.granted(account, Scope("repository", n, ("pull",)))]

    def granted(self, account: str | None, scope: Scope) -> set[str]:
        """The subset of `scope.actions` that `account` (None: anonymous) holds."""
        wanted = set(scope.actions)
        if "*" in wanted:
            wanted = set(ALL_ACTIONS) | {"*"}
        if self.rules is None:
            return wanted if account else set()
        held: set[str] = set()
        for rule in self.rules:
            who = rule.get("account", "*")
            if who == ANONYMOUS:
                if account:
                    continue
            elif not account or (who != "*" and who != account):
                continue
            kind = rule.get("type", "repository")
            pattern = str(rule.get("name", "*")).replace("${account}", account or "")
            if kind != scope.type or not fnmatchcase(scope.name, pattern):
                continue
            actions = set(rule.get("actions", []))
            held |= set(ALL_ACTIONS) | {"*"} if "*" in actions else actions
        return wanted & held


class Authorizer(Protocol):
    """Decides one request: `authorize` returns the account (None: anonymous) or raises 401/403."""

    def authorize(self, headers: dict[str, str], scopes: list[Scope]) -> str | None: ...

    def visible(self, headers: dict[str, str], names: list[str]) -> list[str]:
        """The repositories this caller may pull (search); never raises."""
        ...

    def catalog(self, headers: dict[str, str], names: list[str]) -> list[str]:
        """The repositories `GET /v2/_catalog` shows this caller; may answer with a challenge."""
        ...


class OpenAccess:
    """No authentication configured: everyone may do everything (distribution's default)."""

    def authorize(self, headers: dict[str, str], scopes: list[Scope]) -> str | None:
        return None

    def visible(self, headers: dict[str, str], names: list[str]) -> list[str]:
        return names

    def catalog(self, headers: dict[str, str], names: list[str]) -> list[str]:
        return names


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    """The (user, password) of an `Authorization: Basic` header, None when there is none."""
    value = headers.get("authorization", "")
    kind, _, token = value.partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _missing(granted: Iterable[str], scope: Scope) -> bool:
    have = set(granted)
    return not all(a in have for a in scope.actions)


class BasicAccess:
    """htpasswd accounts over `Authorization: Basic`, filtered through the ACL."""

    def __init__(self, htpasswd: Htpasswd, acl: Acl, realm: str = "dockyard-registry") -> None:
        self.htpasswd = htpasswd
        self.acl = acl
        self.challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    def account(self, headers: dict[str, str]) -> str | None:
        """The authenticated user, None when anonymous; bad credentials are a 401 at once."""
        if "authorization" not in headers:
            return None
        creds = basic_credentials(headers)
        if creds is None or not self.htpasswd.verify(*creds):
            raise RegistryError("UNAUTHORIZED", headers=self.challenge)
        return creds[0]

    def authorize(self, headers: dict[str, str], scopes: list[Scope]) -> str | None:
        account = self.account(headers)
        for scope in scopes:
            if _missing(self.acl.granted(account, scope), scope):
                if account is None:
                    raise RegistryError("UNAUTHORIZED", headers=self.challenge)
                raise RegistryError("DENIED")
        if account is None and not scopes:  # GET /v2/: docker login needs the challenge
            raise RegistryError("UNAUTHORIZED", headers=self.challenge)
        return account

    def visible(self, headers: dict[str, str], names: list[str]) -> list[str]:
        try:
            account = self.account(headers)
        except RegistryError:
            account = None
        return self.acl.pullable(account, names)

    def catalog(self, headers: dict[str, str], names: list[str]) -> list[str]:
        return self.acl.pullable(self.authorize(headers, []), names)

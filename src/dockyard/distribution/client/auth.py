"""Registry authentication: WWW-Authenticate challenges, Basic credentials and cached bearer tokens.

The flow is distribution's token spec: a 401 names a realm, service and scope; the client fetches a
token from the realm (with Basic credentials when it has some) and retries. Tokens are reused per
(realm, service, scope, user) until they expire, so a pull makes one token request, not one per blob.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from dockyard.distribution.client.credentials import AuthConfig
from dockyard.errors import Unauthorized

_PARAM_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_MIN_EXPIRY = 60  # the token spec: a missing or smaller expires_in means 60 seconds
_EXPIRY_MARGIN = 5


class AuthenticationFailed(Unauthorized):
    """The credentials (or their absence) were refused while answering a challenge."""


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="...",service="...",scope="..."` (several schemes may be listed)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme, _, rest = rest.partition(" ")
        params: dict[str, str] = {}
        while rest:
            match = _PARAM_RE.match(rest)
            if match is None:
                break
            quoted, bare = match.group(2), match.group(3)
            params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            rest = rest[match.end() :]
        if scheme:
            challenges.append(Challenge(scheme.strip().lower(), params))
        rest = rest.strip().lstrip(",").strip()
    return challenges


def basic_header(auth: AuthConfig) -> str:
    return "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()


# (method, url, headers) -> (status, body bytes); injected so this module stays free of HTTP details.
TokenFetcher = Callable[[str, str, dict[str, str]], tuple[int, bytes]]


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Answers challenges for one registry and caches the tokens it obtains."""

    def __init__(self, auth: AuthConfig | None, fetch: TokenFetcher, clock: Callable[[], float] = time.monotonic):
        self.auth = auth if auth is not None and not auth.empty else None
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._challenge: Challenge | None = None  # the registry's last challenge: pre-authorise with it

    def header_for(self, scope: str) -> str | None:
        """An Authorization value to send before being challenged (None: try without)."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(self.auth) if self.auth else None
        token = self._cached(challenge, scope)
        return f"Bearer {token}" if token else None

    def answer(self, www_authenticate: str, scope: str) -> str:
        """The Authorization value answering a 401; raises Unauthorized when none can."""
        challenges = parse_challenges(www_authenticate)
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.realm:
                self._challenge = challenge
                return "Bearer " + self._token(challenge, scope)
        for challenge in challenges:
            if challenge.scheme == "basic":
                self._challenge = challenge
                if self.auth is None or not self.auth.username:
                    raise AuthenticationFailed("unauthorized: authentication required")
                return basic_header(self.auth)
        raise AuthenticationFailed(f"unauthorized: unsupported authentication challenge {www_authenticate!r}")

    def _scopes(self, challenge: Challenge, scope: str) -> str:
        # A challenge's own scope is what this very request needs; ours may add push for uploads.
        return scope or challenge.params.get("scope", "")

    def _cached(self, challenge: Challenge, scope: str) -> str | None:
        key = (challenge.realm, challenge.params.get("service", ""), self._scopes(challenge, scope))
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires > self._clock():
                return token.value
        return None

    def _token(self, challenge: Challenge, scope: str) -> str:
        scopes = self._scopes(challenge, scope)
        key = (challenge.realm, challenge.params.get("service", ""), scopes)
        cached = self._cached(challenge, scope)
        if cached:
            return cached
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query += [("scope", s) for s in scopes.split(" ") if s]
        headers: dict[str, str] = {}
        if self.auth is not None:
            if self.auth.identity_token:
                query += [("grant_type", "refresh_token"), ("refresh_token", self.auth.identity_token)]
            else:
                headers["Authorization"] = basic_header(self.auth)
            if self.auth.username:
                query.append(("account", self.auth.username))
        separator = "&" if "?" in challenge.realm else "?"
        url = challenge.realm + (separator + urlencode(query) if query else "")
        status, body = self._fetch("GET", url, headers)
        if status == 401 or status == 403:
            raise AuthenticationFailed(
                "unauthorized: incorrect username or password" if self.auth else "unauthorized: authentication required"
            )
        if status != 200:
            raise AuthenticationFailed(f"unauthorized: token server answered {status}")
        value, lifetime = _parse_token(body)
        with self._lock:
            self._tokens[key] = _Token(value, self._clock() + max(lifetime, _MIN_EXPIRY) - _EXPIRY_MARGIN)
        return value


def _parse_token(body: bytes) -> tuple[str, int]:
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise AuthenticationFailed("unauthorized: the token server sent invalid JSON") from None
    if not isinstance(data, dict):
        raise AuthenticationFailed("unauthorized: the token server sent invalid JSON")
    value = data.get("token") or data.get("access_token")
    if not isinstance(value, str) or not value:
        raise AuthenticationFailed("unauthorized: the token server sent no token")
    lifetime = data.get("expires_in")
    return value, lifetime if isinstance(lifetime, int) and lifetime > 0 else _MIN_EXPIRY

"""Docker's token flow, both halves in one process: the token endpoint and the Bearer check.

Tokens are JWTs signed with the server's private key: ES256 for an EC P-256 key (generated on
first use when the key file does not exist), RS256 for an RSA key. Claims follow distribution's
token spec: iss, sub, aud (the service), exp/nbf/iat, jti and `access`
(`[{"type","name","actions"}]`). Only this process checks them, with its own public key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from typing import Any

from dockyard.distribution.server.auth import Acl, Htpasswd, Scope, basic_credentials
from dockyard.distribution.server.errors import RegistryError
from dockyard.util.fs import atomic_write

TOKEN_TTL = 300
CATALOG = Scope("registry", "catalog", ("*",))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: str) -> Any:
    """The PEM private key at `path`; a new EC P-256 key (mode 0600) when there is none."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    atomic_write(path, pem, mode=0o600)
    return key


class Signer:
    """JWT signing and verification with one key pair (ES256 or RS256)."""

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.key = key
        self.public = key.public_key()
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name != "secp256r1":
                raise ValueError("EC token keys must be P-256 (ES256)")
            self.alg = "ES256"
        elif isinstance(key, rsa.RSAPrivateKey):
            self.alg = "RS256"
        else:
            raise ValueError("token key must be an EC P-256 or RSA private key")

    def sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"typ": "JWT", "alg": self.alg}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(signature)}"

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this key signed, None for anything else."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        try:
            head, body, sig = token.split(".")
            header = json.loads(_unb64(head))
            signature = _unb64(sig)
            if header.get("alg") != self.alg:
                return None
            signing_input = f"{head}.{body}".encode()
            if self.alg == "ES256":
                if len(signature) != 64:
                    return None
                der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
                self.public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            else:
                self.public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_unb64(body))
        except (ValueError, InvalidSignature, TypeError):
            return None
        return claims if isinstance(claims, dict) else None


class TokenAccess:
    """Bearer tokens issued by this process; the token endpoint grants what the ACL allows."""

    def __init__(
        self, signer: Signer, realm: str, service: str, issuer: str, acl: Acl, htpasswd: Htpasswd | None
    ) -> None:
        self.signer = signer
        self.realm = realm
        self.service = service
        self.issuer = issuer
        self.acl = acl
        self.htpasswd = htpasswd
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def challenge(self, scopes: list[Scope], error: str | None = None) -> dict[str, str]:
        value = f'Bearer realm="{self.realm}",service="{self.service}"'
        if scopes:
            value += f',scope="{" ".join(str(s) for s in scopes)}"'
        if error:
            value += f',error="{error}"'
        return {"WWW-Authenticate": value}

    def _claims(self, headers: dict[str, str]) -> dict[str, Any] | None:
        kind, _, token = headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer":
            return None
        token = token.strip()
        claims = self._verified.get(token)
        if claims is None:
            claims = self.signer.verify(token)
            if claims is None or claims.get("iss") != self.issuer or claims.get("aud") != self.service:
                return None
            with self._lock:
                if len(self._verified) > 10000:
                    self._verified.clear()
                self._verified[token] = claims
        now = time.time()
        if not (claims.get("nbf", 0) - 60 <= now < claims.get("exp", 0)):
            self._verified.pop(token, None)
            return None
        return claims

    @staticmethod
    def _holds(claims: dict[str, Any], scope: Scope) -> bool:
        for entry in claims.get("access") or []:
            if entry.get("type") == scope.type and entry.get("name") == scope.name:
                actions = set(entry.get("actions") or [])
                return "*" in actions or all(a in actions for a in scope.actions)
        return False

    def authorize(self, headers: dict[str, str], scopes: list[Scope]) -> str | None:
        claims = self._claims(headers)
        if claims is None:
            raise RegistryError("UNAUTHORIZED", headers=self.challenge(scopes))
        for scope in scopes:
            if not self._holds(claims, scope):
                raise RegistryError("UNAUTHORIZED", headers=self.challenge(scopes, "insufficient_scope"))
        return claims.get("sub") or None

    def visible(self, headers: dict[str, str], names: list[str]) -> list[str]:
        claims = self._claims(headers)
        account = claims.get("sub") if claims else self._account(headers, strict=False)
        return self.acl.pullable(account or None, names)

    def catalog(self, headers: dict[str, str], names: list[str]) -> list[str]:
        self.authorize(headers, [CATALOG])
        return names

    def _account(self, headers: dict[str, str], strict: bool = True) -> str | None:
        if "authorization" not in headers or headers["authorization"].lower().startswith("bearer "):
            return None
        creds = basic_credentials(headers)
        if creds is None or self.htpasswd is None or not self.htpasswd.verify(*creds):
            if strict:
                raise RegistryError("UNAUTHORIZED", headers={"WWW-Authenticate": f'Basic realm="{self.service}"'})
            return None
        return creds[0]

    def issue(self, headers: dict[str, str], query: dict[str, list[str]]) -> dict[str, Any]:
        """The token endpoint: authenticate (Basic, optional), grant requested ∩ allowed, sign."""
        service = (query.get("service") or [self.service])[-1]
        if service != self.service:
            raise RegistryError("DENIED", {"service": service}, message="unknown service")
        account = self._account(headers)
        access = []
        for text in (s for value in query.get("scope", []) for s in value.split(" ") if s):
            scope = Scope.parse(text)
            if scope is None:
                continue
            granted = self.acl.granted(account, scope)
            if granted:
                access.append(
                    {
                        "type": scope.type,
                        "name": scope.name,
                        "actions": sorted(a for a in granted if a in scope.actions or "*" in scope.actions),
                    }
                )
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + TOKEN_TTL,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = self.signer.sign(claims)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": TOKEN_TTL, "issued_at": issued}

"""Who is calling, and may they: API keys (hashed, compared in constant time) and HS256 JWTs.

Credentials come as `Authorization: Bearer <key or JWT>` or `X-API-Key: <key>`. A JWT is
told from a key by its shape (three dot-separated parts). No credential, or one that does
not verify, is 401; a valid one without the route's scope is 403.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import jwt
from aiohttp import web

from api.keys import SCOPES, KeyEntry, digest, parse_key_entries
from api.metrics import AUTH_FAILURES
from api.problems import Problem
from api.settings import ApiSettings

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="llm-observatory"'}
JWT_LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class Caller:
    identity: str  # "key:NAME", "jwt:SUB" or "anonymous": rate limits and logs use it
    scopes: frozenset[str]


def _unauthorized(reason: str, detail: str) -> Problem:
    AUTH_FAILURES.labels(reason).inc()
    return Problem(401, "Unauthorized", detail, headers=_CHALLENGE)


class Authenticator:
    def __init__(self, settings: ApiSettings) -> None:
        self.keys: tuple[KeyEntry, ...] = parse_key_entries(settings.api_keys)
        self.jwt_secret = settings.jwt_secret
        self.jwt_audience = settings.jwt_audience or None
        self.jwt_max_lifetime = settings.jwt_max_lifetime
        self.disabled = settings.api_auth_disabled

    def caller(self, request: web.Request) -> Caller:
        if self.disabled:
            return Caller("anonymous", frozenset(SCOPES))
        token = _credential(request)
        if token is None:
            raise _unauthorized("missing", "send an API key (Authorization: Bearer <key> or X-API-Key) or a bearer JWT")
        if token.count(".") == 2 and self.jwt_secret:
            return self._jwt(token)
        return self._key(token)

    def _key(self, token: str) -> Caller:
        presented = digest(token)
        found: KeyEntry | None = None
        for entry in self.keys:  # every entry is compared, so timing does not tell which matched
            if hmac.compare_digest(entry.digest, presented):
                found = entry
        if found is None:
            raise _unauthorized("invalid_key", "the credential is not a valid API key or token")
        return Caller(f"key:{found.name}", found.scopes)

    def _jwt(self, token: str) -> Caller:
        try:
            claims = jwt.decode(
                token, self.jwt_secret, algorithms=["HS256"], audience=self.jwt_audience,
                options={"require": ["exp", "sub"], "verify_aud": self.jwt_audience is not None},
                leeway=JWT_LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("expired_jwt", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid_jwt", f"the token is not valid: {exc}") from None
        if self.jwt_max_lifetime:
            self._check_lifetime(claims)
        # OAuth-style space-separated scopes; ones this API does not know grant nothing.
        scopes = frozenset(s for s in str(claims.get("scope", "")).split() if s in SCOPES)
        return Caller(f"jwt:{claims['sub']}", scopes)


    def _check_lifetime(self, claims: dict[str, object]) -> None:
        """A stolen long-lived token stays useful for its whole life: refuse any whose life
        (from iat, or from now when it has none) is longer than JWT_MAX_LIFETIME."""
        issued = claims.get("iat")
        start = issued if isinstance(issued, (int, float)) and not isinstance(issued, bool) else time.time()
        expires = claims["exp"]
        if not isinstance(expires, (int, float)) or expires - start > self.jwt_max_lifetime + JWT_LEEWAY_SECONDS:
            raise _unauthorized(
                "jwt_lifetime", f"the token lives longer than JWT_MAX_LIFETIME ({self.jwt_max_lifetime} s); issue shorter-lived tokens",
            )


def require(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes:
        AUTH_FAILURES.labels("forbidden").inc()
        raise Problem(403, "Forbidden", f"this credential lacks the {scope!r} scope")


def _credential(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise _unauthorized("malformed", "Authorization must be 'Bearer <API key or JWT>'")
    key = request.headers.get("X-API-Key", "").strip()
    return key or None

"""Server side of private_key_jwt: verify a client assertion the way a strict payer does.

Used by the sandbox payer's token endpoint and its CDS Hooks service. Every failure is an
:class:`AssertionRejected` with the RFC 6749 error code to answer and a description precise enough for the
client's developer to fix their side, without echoing the token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from fhir_pa.errors import AuthError

#: Key type each signature family needs (RFC 7518 §3.1).
_KTY_FOR_ALG_PREFIX = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


class AssertionRejected(AuthError):
    """The assertion is not acceptable. ``error`` is the OAuth error code to answer with."""

    code = "assertion"

    def __init__(self, error: str, description: str) -> None:
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}")


def _rejected(description: str) -> AssertionRejected:
    return AssertionRejected("invalid_client", description)


class JtiCache:
    """Remembers ``(iss, jti)`` pairs until the assertion they came with expires, to refuse replays.

    Thread-safe and bounded: when full of live entries it refuses new assertions rather than forget one
    (forgetting would reopen a replay window). Only verified assertions reach it, so filling it takes keys.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def check_and_add(self, iss: str, jti: str, exp: float, now: float | None = None) -> bool:
        """True the first time ``(iss, jti)`` is seen (it is then remembered until ``exp``); False on a replay."""
        moment = time.time() if now is None else now
        key = (iss, jti)
        with self._lock:
            remembered = self._seen.get(key)
            if remembered is not None and remembered >= moment:
                return False
            if len(self._seen) >= self._max:
                self._seen = {k: until for k, until in self._seen.items() if until >= moment}
                if len(self._seen) >= self._max:
                    raise AssertionRejected("temporarily_unavailable",
                                            "too many client assertions in flight; try again shortly")
            self._seen[key] = exp
            return True


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, before any verification."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise _rejected("client_assertion is not a well-formed signed JWT (compact JWS)") from None
    if not isinstance(claims, dict):
        raise _rejected("client_assertion claims are not a JSON object")
    return dict(compact.protected), claims


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT before verification (to report on them; never to trust them)."""
    return _unverified(token)


def unverified_issuer(token: str) -> str:
    """The ``iss`` claim before verification, so the server can find the client's registered keys."""
    iss = _unverified(token)[1].get("iss")
    if not isinstance(iss, str) or not iss:
        raise _rejected("client_assertion has no iss claim")
    return iss


def _check_header(header: Mapping[str, Any], algorithms: Sequence[str]) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of an acceptable header."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise _rejected(f"alg {alg!r} is not accepted (accepted: {', '.join(algorithms)})")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise _rejected(f"the JWT header typ must be 'JWT', not {typ!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _rejected("the JWT header has no kid")
    return alg, kid


def _select_key(jwks: Mapping[str, Any], alg: str, kid: str) -> RSAKey | ECKey:
    """The one registered key with this ``kid`` whose type (and ``alg``/``use``, when given) fit ``alg``."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise _rejected("the client's registered JWKS has no keys array")
    kty = _KTY_FOR_ALG_PREFIX.get(alg[:2])
    matches = [k for k in entries if isinstance(k, dict) and k.get("kid") == kid and k.get("kty") == kty]
    if not matches:
        raise _rejected(f"no {kty or alg} key with kid {kid!r} is registered for this client")
    if len(matches) > 1:
        raise _rejected(f"{len(matches)} {kty} keys with kid {kid!r} are registered; kids must be unique")
    jwk = matches[0]
    if jwk.get("alg") not in (None, alg):
        raise _rejected(f"key {kid!r} is registered for alg {jwk.get('alg')!r}, not {alg!r}")
    if jwk.get("use") not in (None, "sig"):
        raise _rejected(f"key {kid!r} is registered for use {jwk.get('use')!r}, not signatures")
    public = {name: value for name, value in jwk.items() if name not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
    try:
        return RSAKey.import_key(public) if kty == "RSA" else ECKey.import_key(public)
    except (JoseError, ValueError, TypeError, KeyError):
        raise _rejected(f"registered key {kid!r} is not a usable {kty} JWK") from None


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _rejected(f"{name} must be a NumericDate (seconds since the epoch)")
    return float(value)


def _check_claims(claims: Mapping[str, Any], *, audience: str, issuer: str | None, max_lifetime: int,
                  leeway: int, moment: float) -> tuple[str, str, float]:
    """``iss``, ``jti`` and ``exp`` of acceptable claims."""
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not iss:
        raise _rejected("iss is missing")
    if issuer is not None and iss != issuer:
        raise _rejected(f"iss must be the registered client id {issuer!r}")
    if sub != iss:
        raise _rejected("sub must equal iss (the client id)")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise _rejected(f"aud must be {audience!r} (the exact token endpoint URL)")
    exp = _number(claims, "exp")
    if exp is None:
        raise _rejected("exp is missing")
    if exp <= moment - leeway:
        raise _rejected("the assertion has expired (exp is in the past)")
    if exp - moment > max_lifetime + leeway:
        raise _rejected(f"exp is more than {max_lifetime} seconds in the future")
    for name in ("iat", "nbf"):
        value = _number(claims, name)
        if value is not None and value > moment + leeway:
            raise _rejected(f"{name} is in the future; check the client's clock")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _rejected("jti is missing")
    return iss, jti, exp


def verify_client_assertion(token: str, *, jwks: Mapping[str, Any], audience: str, issuer: str | None = None,
                            jti_cache: JtiCache | None = None, max_lifetime: int = 300, leeway: int = 60,
                            algorithms: Sequence[str] = ("RS384", "ES384"), now: float | None = None,
                            ) -> dict[str, Any]:
    """Check header (alg, typ, kid), key choice, signature, iss/sub, aud, exp and its distance, and jti.

    Returns the verified claims. Only once everything else holds is the ``jti`` recorded, so a rejected
    assertion does not burn its jti.
    """
    moment = time.time() if now is None else now
    header, _ = _unverified(token)
    alg, kid = _check_header(header, algorithms)
    key = _select_key(jwks, alg, kid)
    try:
        verified = jwt.decode(token, key, algorithms=[alg])
    except JoseError:
        raise _rejected(f"the signature does not verify with registered key {kid!r}") from None
    claims = dict(verified.claims)
    iss, jti, exp = _check_claims(claims, audience=audience, issuer=issuer, max_lifetime=max_lifetime,
                                  leeway=leeway, moment=moment)
    # Remember the jti for as long as this verifier would still accept the assertion: exp plus leeway.
    if jti_cache is not None and not jti_cache.check_and_add(iss, jti, exp + leeway, moment):
        raise _rejected("jti has already been used (replayed assertion)")
    return claims

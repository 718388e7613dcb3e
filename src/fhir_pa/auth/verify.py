"""Server side of private_key_jwt: verify a client assertion as a strict payer would.

Used by the sandbox payer's token endpoint (and later its CDS Hooks service). Every failure is an
:class:`AssertionRejected` carrying the RFC 6749 error code and a precise description.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from fhir_pa.errors import AuthError

_KTY = {"RS": "RSA", "ES": "EC"}


class AssertionRejected(AuthError):
    """The assertion is not acceptable; ``error`` is the OAuth error code to answer with."""

    code = "assertion"

    def __init__(self, description: str, error: str = "invalid_client") -> None:
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}")


class JtiCache:
    """Remembers (iss, jti) pairs until their token expires, to refuse replays. Thread-safe, bounded."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def check_and_add(self, iss: str, jti: str, exp: float, now: float | None = None) -> bool:
        """True the first time a (iss, jti) is seen before it expires; False on a replay."""
        moment = now if now is not None else time.time()
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > moment}
                if len(self._seen) >= self._max:
                    raise AssertionRejected("too many assertions in flight; try later", "temporarily_unavailable")
            key = (iss, jti)
            if key in self._seen and self._seen[key] > moment:
                return False
            self._seen[key] = exp
            return True


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise AssertionRejected("client_assertion is not a well-formed JWT") from None
    if not isinstance(claims, dict):
        raise AssertionRejected("client_assertion claims are not a JSON object")
    return dict(compact.protected), claims


def unverified_issuer(token: str) -> str:
    """The ``iss`` claim before verification, so the server can find the client's keys."""
    iss = _parts(token)[1].get("iss")
    if not isinstance(iss, str) or not iss:
        raise AssertionRejected("client_assertion has no iss")
    return iss


def _select_key(header: Mapping[str, Any], jwks: Mapping[str, Any], algorithms: Sequence[str]) -> RSAKey | ECKey:
    alg = header.get("alg")
    if alg not in algorithms:
        raise AssertionRejected(f"alg {alg!r} is not accepted (accepted: {', '.join(algorithms)})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AssertionRejected("the JWT header has no kid")
    try:
        keyset = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    except (JoseError, ValueError, KeyError, TypeError):
        raise AssertionRejected("the client's registered JWKS is unusable") from None
    kty = _KTY.get(str(alg)[:2])
    matches = [k for k in keyset.keys if k.kid == kid and k.key_type == kty]
    if len(matches) != 1:
        raise AssertionRejected(f"no single {kty} key with kid {kid!r} is registered for this client")
    key = matches[0]
    assert isinstance(key, RSAKey | ECKey)
    return key


def verify_client_assertion(token: str, *, jwks: Mapping[str, Any], audience: str, issuer: str | None = None,
                            jti_cache: JtiCache | None = None, max_lifetime: int = 300, leeway: int = 60,
                            algorithms: Sequence[str] = ("RS384", "ES384"), now: float | None = None) -> dict[str, Any]:
    """Verify signature, alg, kid, iss/sub, aud, exp (and its distance), and jti; return the claims."""
    moment = now if now is not None else time.time()
    header, _ = _parts(token)
    key = _select_key(header, jwks, algorithms)
    try:
        decoded = jwt.decode(token, key, algorithms=[str(header["alg"])])
    except JoseError as exc:
        raise AssertionRejected(f"signature does not verify with the registered key ({exc.error})") from None
    claims = dict(decoded.claims)
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or (issuer is not None and iss != issuer):
        raise AssertionRejected("iss is not the registered client id")
    if sub != iss:
        raise AssertionRejected("sub must equal iss")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise AssertionRejected(f"aud must be {audience}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AssertionRejected("exp is missing")
    if exp < moment - leeway:
        raise AssertionRejected("the assertion has expired")
    if exp - moment > max_lifetime + leeway:
        raise AssertionRejected(f"exp is more than {max_lifetime} seconds ahead")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AssertionRejected("jti is missing")
    if jti_cache is not None and not jti_cache.check_and_add(iss, jti, float(exp), moment):
        raise AssertionRejected("jti was already used (replay)")
    return claims

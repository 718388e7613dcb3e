"""Client assertions as we sign them, and the verifier a strict payer (our sandbox) runs on them."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.keys import SigningKey, generate_key, public_jwks
from fhir_pa.auth.verify import AssertionRejected, JtiCache, unverified_issuer, verify_client_assertion

AUD = "https://payer.test/auth/token"
NOW = 1_800_000_000.0
CLIENT = "client-1"


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return generate_key("RS384")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return generate_key("ES384")


@pytest.fixture(params=["RS384", "ES384"])
def key(request: pytest.FixtureRequest, rsa_key: SigningKey, ec_key: SigningKey) -> SigningKey:
    return rsa_key if request.param == "RS384" else ec_key


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": CLIENT, "sub": CLIENT, "aud": AUD, "iat": int(NOW), "exp": int(NOW) + 300,
                              "jti": "jti-1"}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _sign(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    """A JWT signed by joserfc directly, for claims our own signer would never produce."""
    full = {"alg": key.alg, "kid": key.kid, "typ": "JWT", **header}
    return jwt.encode({k: v for k, v in full.items() if v is not None}, claims, key.key, algorithms=[full["alg"]])


def _verify(token: str, key: SigningKey, **options: Any) -> dict[str, Any]:
    options.setdefault("jwks", public_jwks(key))
    options.setdefault("now", NOW)
    return verify_client_assertion(token, audience=AUD, **options)


# --- what we sign ----------------------------------------------------------------------------------


def test_assertion_header_and_claims(key: SigningKey) -> None:
    token = client_assertion(key, client_id=CLIENT, audience=AUD, now=NOW, jku="https://ehr.test/jwks.json")
    header, claims = _segment(token, 0), _segment(token, 1)
    assert header == {"alg": key.alg, "kid": key.kid, "typ": "JWT", "jku": "https://ehr.test/jwks.json"}
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["aud"] == AUD  # a string, not a list
    assert (claims["iat"], claims["exp"]) == (int(NOW), int(NOW) + 300)
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])
    assert _verify(token, key) == claims


def test_each_assertion_has_its_own_jti_and_no_jku_unless_asked(ec_key: SigningKey) -> None:
    first = client_assertion(ec_key, client_id=CLIENT, audience=AUD, now=NOW)
    second = client_assertion(ec_key, client_id=CLIENT, audience=AUD, now=NOW)
    assert _segment(first, 1)["jti"] != _segment(second, 1)["jti"]
    assert "jku" not in _segment(first, 0)


def test_lifetime_is_capped_at_five_minutes_and_extra_claims_cannot_override(ec_key: SigningKey) -> None:
    token = client_assertion(ec_key, client_id=CLIENT, audience=AUD, now=NOW, lifetime=3600,
                             extra_claims={"tenant": "t1", "iss": "someone-else"})
    claims = _segment(token, 1)
    assert claims["exp"] - claims["iat"] == 300
    assert (claims["tenant"], claims["iss"]) == ("t1", CLIENT)
    short = client_assertion(ec_key, client_id=CLIENT, audience=AUD, now=NOW, lifetime=60)
    assert _segment(short, 1)["exp"] == int(NOW) + 60


# --- what the verifier accepts ---------------------------------------------------------------------


def test_accepts_an_audience_list_and_a_matching_issuer(ec_key: SigningKey) -> None:
    token = _sign(ec_key, _claims(aud=["https://elsewhere.test", AUD]))
    assert _verify(token, ec_key, issuer=CLIENT)["jti"] == "jti-1"


def test_picks_the_key_by_kid_among_several(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    jwks = public_jwks(rsa_key, ec_key, generate_key("ES384"))
    for key in (rsa_key, ec_key):
        assert _verify(client_assertion(key, client_id=CLIENT, audience=AUD, now=NOW), key, jwks=jwks)


def test_leeway_allows_small_clock_skew(ec_key: SigningKey) -> None:
    token = _sign(ec_key, _claims(exp=int(NOW) - 30))
    assert _verify(token, ec_key, leeway=60)
    with pytest.raises(AssertionRejected, match="expired"):
        _verify(token, ec_key, leeway=0)


# --- what it refuses ---------------------------------------------------------------------------------


def _hs256(ec_key: SigningKey) -> str:
    secret = OctKey.import_key("a-shared-secret-that-is-long-enough-for-hs256")
    return jwt.encode({"alg": "HS256", "kid": ec_key.kid, "typ": "JWT"}, _claims(), secret, algorithms=["HS256"])


REFUSALS: dict[str, tuple[Callable[[SigningKey, SigningKey], str], dict[str, Any], str]] = {
    # name: (make token from (ec_key, rsa_key), verify options, expected words in the description)
    "expired": (lambda ec, _: _sign(ec, _claims(iat=int(NOW) - 500, exp=int(NOW) - 200)), {}, "expired"),
    "too long-lived": (lambda ec, _: _sign(ec, _claims(exp=int(NOW) + 3600)), {}, "more than 300 seconds"),
    "no exp": (lambda ec, _: _sign(ec, _claims(exp=None)), {}, "exp is missing"),
    "exp not a number": (lambda ec, _: _sign(ec, _claims(exp="soon")), {}, "NumericDate"),
    "iat in the future": (lambda ec, _: _sign(ec, _claims(iat=int(NOW) + 600, exp=int(NOW) + 300)), {},
                          "iat is in the future"),
    "wrong audience": (lambda ec, _: _sign(ec, _claims(aud="https://payer.test/other")), {}, "aud must be"),
    "sub differs from iss": (lambda ec, _: _sign(ec, _claims(sub="someone")), {}, "sub must equal iss"),
    "no iss": (lambda ec, _: _sign(ec, _claims(iss=None, sub=None)), {}, "iss is missing"),
    "another client's iss": (lambda ec, _: _sign(ec, _claims()), {"issuer": "client-2"}, "registered client id"),
    "no jti": (lambda ec, _: _sign(ec, _claims(jti=None)), {}, "jti is missing"),
    "unknown kid": (lambda ec, _: _sign(ec, _claims(), kid="not-registered"), {}, "kid 'not-registered'"),
    "no kid": (lambda ec, _: _sign(ec, _claims(), kid=None), {}, "no kid"),
    "wrong typ": (lambda ec, _: _sign(ec, _claims(), typ="at+jwt"), {}, "typ must be 'JWT'"),
    "wrong key, same kid": (lambda ec, _: _sign(generate_key("ES384", kid=ec.kid), _claims()), {},
                            "signature does not verify"),
    "rsa kid, ec key type": (lambda ec, rsa: _sign(rsa, _claims(), kid=ec.kid), {}, "no RSA key with kid"),
    "HS256": (lambda ec, _: _hs256(ec), {}, "alg 'HS256' is not accepted"),
    "RS256": (lambda _, rsa: _sign(rsa, _claims(), alg="RS256"), {}, "alg 'RS256' is not accepted"),
    "RS384 not allowed here": (lambda _, rsa: _sign(rsa, _claims()), {"algorithms": ("ES384",)},
                               "alg 'RS384' is not accepted"),
    "not a JWT": (lambda ec, _: "not-a-jwt", {}, "not a well-formed"),
    "tampered claims": (lambda ec, _: _tamper(_sign(ec, _claims())), {}, "signature does not verify"),
}


def _tamper(token: str) -> str:
    header, _, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(iss="c2", sub="c2")).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusals_are_invalid_client_with_a_precise_description(name: str, ec_key: SigningKey,
                                                                rsa_key: SigningKey) -> None:
    make, options, words = REFUSALS[name]
    token = make(ec_key, rsa_key)
    options = {"jwks": public_jwks(ec_key, rsa_key), **options}
    with pytest.raises(AssertionRejected) as err:
        _verify(token, ec_key, **options)
    assert err.value.error == "invalid_client"
    assert words in err.value.description, err.value.description
    assert token not in str(err.value) and token.split(".")[-1] not in str(err.value)


def test_registered_key_must_fit_alg_and_be_unique(ec_key: SigningKey) -> None:
    token = client_assertion(ec_key, client_id=CLIENT, audience=AUD, now=NOW)
    other_alg = {"keys": [{**ec_key.public_jwk(), "alg": "ES256"}]}
    with pytest.raises(AssertionRejected, match="registered for alg 'ES256'"):
        _verify(token, ec_key, jwks=other_alg)
    for_encryption = {"keys": [{**ec_key.public_jwk(), "use": "enc"}]}
    with pytest.raises(AssertionRejected, match="use 'enc'"):
        _verify(token, ec_key, jwks=for_encryption)
    twice = {"keys": [ec_key.public_jwk(), generate_key("ES384", kid=ec_key.kid).public_jwk()]}
    with pytest.raises(AssertionRejected, match="kids must be unique"):
        _verify(token, ec_key, jwks=twice)
    with pytest.raises(AssertionRejected, match="no keys array"):
        _verify(token, ec_key, jwks={})
    broken = {"keys": [{**ec_key.public_jwk(), "x": "AAAA"}]}
    with pytest.raises(AssertionRejected, match="not a usable EC JWK"):
        _verify(token, ec_key, jwks=broken)


def test_a_private_jwks_is_used_for_its_public_half_only(rsa_key: SigningKey) -> None:
    token = client_assertion(rsa_key, client_id=CLIENT, audience=AUD, now=NOW)
    assert _verify(token, rsa_key, jwks={"keys": [rsa_key.private_jwk()]})["iss"] == CLIENT


# --- replay -----------------------------------------------------------------------------------------


def test_replayed_jti_is_refused_but_a_refused_assertion_does_not_burn_it(ec_key: SigningKey) -> None:
    cache = JtiCache()
    token = client_assertion(ec_key, client_id=CLIENT, audience=AUD, now=NOW)
    with pytest.raises(AssertionRejected, match="aud"):
        verify_client_assertion(token, jwks=public_jwks(ec_key), audience="https://x.test", jti_cache=cache, now=NOW)
    _verify(token, ec_key, jti_cache=cache)
    with pytest.raises(AssertionRejected, match="replayed") as err:
        _verify(token, ec_key, jti_cache=cache, now=NOW + 10)
    assert err.value.error == "invalid_client"


def test_replay_is_refused_for_as_long_as_leeway_would_accept_it(ec_key: SigningKey) -> None:
    cache = JtiCache()
    token = _sign(ec_key, _claims(exp=int(NOW) + 60))
    _verify(token, ec_key, jti_cache=cache, leeway=60)
    # Past exp but inside the leeway: still a valid-looking assertion, so still a replay.
    with pytest.raises(AssertionRejected, match="replayed"):
        _verify(token, ec_key, jti_cache=cache, leeway=60, now=NOW + 100)


def test_same_jti_from_another_client_is_not_a_replay() -> None:
    cache = JtiCache()
    assert cache.check_and_add("a", "j", NOW + 60, NOW)
    assert cache.check_and_add("b", "j", NOW + 60, NOW)
    assert not cache.check_and_add("a", "j", NOW + 60, NOW + 30)


def test_jti_cache_forgets_expired_entries_and_stays_bounded() -> None:
    cache = JtiCache(max_entries=2)
    assert cache.check_and_add("c", "1", NOW + 10, NOW)
    assert cache.check_and_add("c", "2", NOW + 100, NOW)
    with pytest.raises(AssertionRejected) as err:
        cache.check_and_add("c", "3", NOW + 100, NOW)
    assert err.value.error == "temporarily_unavailable"
    assert cache.check_and_add("c", "3", NOW + 100, NOW + 20)  # "1" has expired and makes room
    assert len(cache) == 2
    with pytest.raises(AssertionRejected):
        cache.check_and_add("c", "4", NOW + 100, NOW + 20)  # nothing else has expired yet


def test_jti_cache_lets_exactly_one_thread_win() -> None:
    cache = JtiCache()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        results.append(cache.check_and_add("c", "same", NOW + 60, NOW))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_unverified_issuer(ec_key: SigningKey) -> None:
    assert unverified_issuer(client_assertion(ec_key, client_id="abc", audience=AUD)) == "abc"
    with pytest.raises(AssertionRejected, match="no iss"):
        unverified_issuer(_sign(ec_key, _claims(iss=None)))
    with pytest.raises(AssertionRejected, match="well-formed"):
        unverified_issuer("a.b")

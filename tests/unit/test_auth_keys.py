"""Signing keys: generation, key files in every accepted form, refusals that never show key material, the CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, RSAKey
from typer.testing import CliRunner

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.keys import (
    SigningKey,
    generate_key,
    load_signing_key,
    public_jwks,
    write_key_pair,
)
from fhir_pa.auth.verify import verify_client_assertion
from fhir_pa.cli import keys as keys_cli
from fhir_pa.errors import KeyFileError

AUD = "https://payer.test/auth/token"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return generate_key("RS384")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return generate_key("ES384")


@pytest.fixture(params=["RS384", "ES384"])
def key(request: pytest.FixtureRequest, rsa_key: SigningKey, ec_key: SigningKey) -> SigningKey:
    return rsa_key if request.param == "RS384" else ec_key


def _signs_for(loaded: SigningKey, original: SigningKey) -> None:
    """``loaded`` signs assertions that verify against ``original``'s published JWKS."""
    token = client_assertion(loaded, client_id="c", audience=AUD)
    assert verify_client_assertion(token, jwks=public_jwks(original), audience=AUD)["iss"] == "c"


def _pem(key: SigningKey, form: serialization.PrivateFormat,
         encryption: serialization.KeySerializationEncryption | None = None) -> bytes:
    private = key.key.private_key
    assert private is not None
    return private.private_bytes(serialization.Encoding.PEM, form, encryption or serialization.NoEncryption())


def _secret_values(key: SigningKey) -> list[str]:
    return [str(value) for name, value in key.private_jwk().items() if name in PRIVATE_MEMBERS]


# --- generation ----------------------------------------------------------------------------------


def test_generated_keys_fit_their_algorithm(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    assert isinstance(rsa_key.key, RSAKey) and rsa_key.key.public_key.key_size >= 3072
    assert isinstance(ec_key.key, ECKey) and ec_key.key.curve_name == "P-384"
    assert (rsa_key.alg, ec_key.alg) == ("RS384", "ES384")
    assert rsa_key.kid == rsa_key.key.thumbprint() and ec_key.kid == ec_key.key.thumbprint()
    assert rsa_key.kid != ec_key.kid


def test_generate_takes_a_kid() -> None:
    assert generate_key("ES384", kid="2026-11").kid == "2026-11"


def test_public_jwk_has_no_private_members(key: SigningKey) -> None:
    jwk = key.public_jwk()
    assert not PRIVATE_MEMBERS & set(jwk)
    assert {jwk["kty"], jwk["kid"], jwk["alg"], jwk["use"]} == {"RSA" if key.alg == "RS384" else "EC",
                                                                  key.kid, key.alg, "sig"}
    assert public_jwks(key) == {"keys": [jwk]}
    assert not any(secret in repr(key) for secret in _secret_values(key))


def test_signing_key_refuses_a_key_that_cannot_sign_its_alg(ec_key: SigningKey) -> None:
    with pytest.raises(KeyFileError, match="RS384 needs an RSA key"):
        SigningKey(kid="k", alg="RS384", key=ec_key.key)
    public_only = ECKey.import_key(ec_key.public_jwk())
    with pytest.raises(KeyFileError, match="private key is needed"):
        SigningKey(kid="k", alg="ES384", key=public_only)


# --- key files ------------------------------------------------------------------------------------


def test_write_key_pair_then_load_round_trips(key: SigningKey, tmp_path: Path) -> None:
    private_path, public_path = write_key_pair(key, tmp_path / "keys")
    assert (private_path.name, public_path.name) == ("private-key.jwk.json", "jwks.json")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    published = json.loads(public_path.read_text())
    assert published == public_jwks(key)
    stored = json.loads(private_path.read_text())
    assert (stored["kid"], stored["alg"]) == (key.kid, key.alg) and "d" in stored
    loaded = load_signing_key(private_path)
    assert (loaded.kid, loaded.alg, loaded.public_jwk()) == (key.kid, key.alg, key.public_jwk())
    _signs_for(loaded, key)
    assert sorted(p.name for p in private_path.parent.iterdir()) == ["jwks.json", "private-key.jwk.json"]


def test_write_key_pair_can_refuse_to_replace(ec_key: SigningKey, tmp_path: Path) -> None:
    private_path, _ = write_key_pair(ec_key, tmp_path)
    before = private_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(generate_key("ES384"), tmp_path, overwrite=False)
    assert private_path.read_bytes() == before


def test_rewriting_keeps_the_private_file_private(ec_key: SigningKey, tmp_path: Path) -> None:
    loose = tmp_path / "private-key.jwk.json"
    loose.write_text("{}")
    loose.chmod(0o644)
    write_key_pair(ec_key, tmp_path)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


@pytest.mark.parametrize("form", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
                         ids=["pkcs8", "traditional"])
def test_pem_infers_alg_and_thumbprint_kid(key: SigningKey, form: serialization.PrivateFormat,
                                           tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(key, form))
    loaded = load_signing_key(path)
    assert (loaded.alg, loaded.kid) == (key.alg, key.kid)
    _signs_for(loaded, key)
    assert load_signing_key(path, kid="given").kid == "given"


def test_jwk_without_kid_takes_the_given_one(ec_key: SigningKey, tmp_path: Path) -> None:
    jwk = {k: v for k, v in ec_key.private_jwk().items() if k not in ("kid", "alg")}
    path = tmp_path / "key.json"
    path.write_text(json.dumps(jwk))
    assert load_signing_key(path).kid == ec_key.kid  # the thumbprint
    assert load_signing_key(path, kid="mine").kid == "mine"
    assert load_signing_key(path).alg == "ES384"


def test_jwks_picks_the_private_key_by_kid(rsa_key: SigningKey, ec_key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.private_jwk(), ec_key.private_jwk(), {"kty": "oct", "k": "x"}]}))
    assert load_signing_key(path, kid=rsa_key.kid).alg == "RS384"
    assert load_signing_key(path, kid=ec_key.kid).alg == "ES384"
    with pytest.raises(KeyFileError, match="2 private keys; choose one by kid"):
        load_signing_key(path)
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"keys": [ec_key.public_jwk(), ec_key.private_jwk()]}))
    assert load_signing_key(single).kid == ec_key.kid


def _write(tmp_path: Path, name: str, content: str | bytes | dict[str, Any]) -> Path:
    path = tmp_path / name
    if isinstance(content, dict):
        path.write_text(json.dumps(content))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_bad_key_files_name_the_file_and_the_problem(rsa_key: SigningKey, ec_key: SigningKey,
                                                     tmp_path: Path) -> None:
    p256 = ECKey.generate_key("P-256", private=True)
    cases: list[tuple[Path, str]] = [
        (tmp_path / "missing.pem", "cannot read"),
        (_write(tmp_path, "junk.txt", "hello"), "neither a PEM key nor JSON"),
        (_write(tmp_path, "list.json", "[1, 2]"), "neither a JWK nor a JWKS"),
        (_write(tmp_path, "public.json", ec_key.public_jwk()), "only a public key"),
        (_write(tmp_path, "public.pem", ec_key.key.as_pem(private=False)), "only a public key"),
        (_write(tmp_path, "p256.json", p256.as_dict(private=True)), "ES384 needs a P-384 key"),
        (_write(tmp_path, "alg.json", {**rsa_key.private_jwk(), "alg": "RS256"}), "'RS256' is not allowed"),
        (_write(tmp_path, "mismatch.json", {**ec_key.private_jwk(), "alg": "RS384"}), "RS384 needs an RSA key"),
        (_write(tmp_path, "oct.json", {"kty": "oct", "k": "c2VjcmV0c2VjcmV0"}), "key type 'oct'"),
        (_write(tmp_path, "broken.json", {**ec_key.private_jwk(), "x": "AAAA"}), "not a usable EC JWK"),
        (_write(tmp_path, "empty.jwks", {"keys": [ec_key.public_jwk()]}), "no private key"),
        (_write(tmp_path, "bad.pem", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
         "not an RSA or EC key"),
        (_write(tmp_path, "locked.pem", _pem(ec_key, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"pw"))), "encrypted"),
    ]
    secrets = _secret_values(rsa_key) + _secret_values(ec_key) + [str(p256.as_dict(private=True)["d"])]
    for path, problem in cases:
        with pytest.raises(KeyFileError) as err:
            load_signing_key(path)
        message = str(err.value)
        assert str(path) in message and problem in message, message
        assert not any(secret in message for secret in secrets), path.name


def test_kid_mismatch_is_refused(ec_key: SigningKey, tmp_path: Path) -> None:
    path = _write(tmp_path, "key.json", ec_key.private_jwk())
    with pytest.raises(KeyFileError, match="not 'other'") as err:
        load_signing_key(path, kid="other")
    assert err.value.path == "kid"
    jwks = _write(tmp_path, "jwks.json", {"keys": [ec_key.private_jwk()]})
    with pytest.raises(KeyFileError, match="no private key with kid 'other'"):
        load_signing_key(jwks, kid="other")


def test_jwks_errors_point_at_the_entry(ec_key: SigningKey, tmp_path: Path) -> None:
    path = _write(tmp_path, "jwks.json", {"keys": [ec_key.public_jwk(), {**ec_key.private_jwk(), "alg": "ES512"}]})
    with pytest.raises(KeyFileError) as err:
        load_signing_key(path)
    assert err.value.path == "keys[1]"


# --- CLI -------------------------------------------------------------------------------------------


def _noop() -> None:
    """A second command keeps Typer in sub-command mode, as under ``fhir-pa keys``."""


def _keys_app() -> typer.Typer:
    app = typer.Typer()
    keys_cli.register(app)
    app.command("noop")(_noop)
    return app


@pytest.mark.parametrize("alg", ["ES384", "rs384"])
def test_cli_generate_writes_a_usable_pair(alg: str, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = CliRunner().invoke(_keys_app(), ["generate", "--alg", alg, "--out", str(out), "--kid", "k1"])
    assert result.exit_code == 0, result.output
    loaded = load_signing_key(out / "private-key.jwk.json")
    assert (loaded.kid, loaded.alg) == ("k1", alg.upper())
    assert str(out / "private-key.jwk.json") in result.output and str(out / "jwks.json") in result.output
    assert "kid: k1" in result.output
    assert not any(secret in result.output for secret in _secret_values(loaded))
    assert stat.S_IMODE((out / "private-key.jwk.json").stat().st_mode) == 0o600


def test_cli_default_kid_is_the_thumbprint(tmp_path: Path) -> None:
    result = CliRunner().invoke(_keys_app(), ["generate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    loaded = load_signing_key(tmp_path / "private-key.jwk.json")
    assert loaded.alg == "ES384" and f"kid: {loaded.key.thumbprint()}" in result.output


def test_cli_refuses_bad_alg_and_existing_keys_without_force(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(_keys_app(), ["generate", "--alg", "HS256", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "HS256" in bad.output
    assert not (tmp_path / "private-key.jwk.json").exists()
    assert runner.invoke(_keys_app(), ["generate", "--out", str(tmp_path)]).exit_code == 0
    first = (tmp_path / "private-key.jwk.json").read_bytes()
    again = runner.invoke(_keys_app(), ["generate", "--out", str(tmp_path)])
    assert isinstance(again.exception, KeyFileError) and "already exists" in str(again.exception)
    assert (tmp_path / "private-key.jwk.json").read_bytes() == first
    forced = runner.invoke(_keys_app(), ["generate", "--out", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "private-key.jwk.json").read_bytes() != first

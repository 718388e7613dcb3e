"""Signing keys for SMART Backend Services and CDS Hooks: generate, load, and publish as JWKS.

Only the public half ever leaves a key file. Errors name the file and the problem, never key material.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from fhir_pa.errors import KeyFileError

Alg = Literal["RS384", "ES384"]
#: The two algorithms SMART clients must support; every other one is refused.
ALGS: tuple[Alg, ...] = ("RS384", "ES384")
#: RSA size for new keys: SMART needs 2048+, 3072 keeps a margin (NIST SP 800-57 beyond 2030).
RSA_BITS = 3072
MIN_RSA_BITS = 2048
PRIVATE_KEY_FILE = "private-key.jwk.json"
PUBLIC_JWKS_FILE = "jwks.json"

_LOAD_ERRORS = (JoseError, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class SigningKey:
    """A private key with the ``kid`` and ``alg`` it signs under (checked to fit each other)."""

    kid: str
    alg: Alg
    key: RSAKey | ECKey = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _misfit(self.key, self.alg)
        if problem or not self.kid:
            raise KeyFileError(f"signing key {self.kid!r}: {problem or 'kid is empty'}")
        if not self.key.is_private:
            raise KeyFileError(f"signing key {self.kid!r}: a private key is needed to sign")

    def public_jwk(self) -> dict[str, Any]:
        """The JWK a payer registers: ``kty``, ``kid``, ``alg``, ``use`` and the public members only."""
        return {**self.key.as_dict(private=False), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def private_jwk(self) -> dict[str, Any]:
        """The whole key as a JWK, for our own key file only."""
        return {**self.key.as_dict(private=True), "kid": self.kid, "alg": self.alg, "use": "sig"}


def _misfit(key: RSAKey | ECKey, alg: object) -> str | None:
    """Why ``key`` cannot sign ``alg``, or None when it can."""
    if alg not in ALGS:
        return f"algorithm {alg!r} is not allowed (use RS384 or ES384)"
    if alg == "RS384":
        if not isinstance(key, RSAKey):
            return f"RS384 needs an RSA key, not {key.key_type}"
        if key.public_key.key_size < MIN_RSA_BITS:
            return f"RS384 needs an RSA key of {MIN_RSA_BITS} bits or more, not {key.public_key.key_size}"
        return None
    if not isinstance(key, ECKey):
        return f"ES384 needs an EC key, not {key.key_type}"
    if key.curve_name != "P-384":
        return f"ES384 needs a P-384 key, not {key.curve_name}"
    return None


def _signing_key(key: RSAKey | ECKey, *, kid: str | None, alg: object, where: str) -> SigningKey:
    if not key.is_private:
        raise KeyFileError(f"{where}: holds only a public key; signing needs the private key")
    wanted = alg or ("RS384" if isinstance(key, RSAKey) else "ES384")
    problem = _misfit(key, wanted)
    if problem:
        raise KeyFileError(f"{where}: {problem}")
    assert wanted in ALGS
    return SigningKey(kid=kid or key.thumbprint(), alg=wanted, key=key)


def generate_key(alg: Alg = "ES384", *, kid: str | None = None) -> SigningKey:
    """A fresh private key: RSA 3072 for RS384, P-384 for ES384. ``kid`` defaults to the RFC 7638 thumbprint."""
    if alg not in ALGS:
        raise KeyFileError(f"algorithm {alg!r} is not allowed (use RS384 or ES384)")
    key: RSAKey | ECKey
    key = RSAKey.generate_key(RSA_BITS, private=True) if alg == "RS384" else ECKey.generate_key("P-384", private=True)
    return SigningKey(kid=kid or key.thumbprint(), alg=alg, key=key)


def load_signing_key(path: str | os.PathLike[str], *, kid: str | None = None, alg: Alg | None = None) -> SigningKey:
    """Load a private key from a PEM file (PKCS#8 or traditional), a private JWK, or a JWKS with private keys.

    Without ``alg`` it comes from the JWK's ``alg`` or the key type; without ``kid`` from the JWK's ``kid`` or
    the key's thumbprint. In a JWKS, ``kid`` picks the key; without it the JWKS must hold exactly one private key.
    """
    file = Path(path)
    where = f"key file {file}"
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {where}: {exc.strerror or type(exc).__name__}") from None
    if raw.lstrip().startswith(b"-----BEGIN"):
        return _from_pem(raw, kid=kid, alg=alg, where=where)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{where}: neither a PEM key nor JSON") from None
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        return _from_jwks(data["keys"], kid=kid, alg=alg, where=where)
    if isinstance(data, dict) and "kty" in data:
        own_kid = data.get("kid")
        if kid is not None and own_kid is not None and own_kid != kid:
            raise KeyFileError(f"{where}: the key's kid is {own_kid!r}, not {kid!r}", path="kid")
        return _from_jwk(data, kid=kid, alg=alg, where=where)
    raise KeyFileError(f"{where}: JSON that is neither a JWK nor a JWKS")


def _from_pem(raw: bytes, *, kid: str | None, alg: Alg | None, where: str) -> SigningKey:
    if b"ENCRYPTED" in raw.lstrip().split(b"\n", 1)[0]:
        raise KeyFileError(f"{where}: encrypted PEM keys are not supported; store the key unencrypted, mode 0600")
    key: RSAKey | ECKey
    try:
        key = RSAKey.import_key(raw)
    except _LOAD_ERRORS:
        try:
            key = ECKey.import_key(raw)
        except _LOAD_ERRORS:
            raise KeyFileError(f"{where}: not an RSA or EC key in PEM form") from None
    return _signing_key(key, kid=kid, alg=alg, where=where)


def _from_jwks(entries: list[Any], *, kid: str | None, alg: Alg | None, where: str) -> SigningKey:
    found = [(i, k) for i, k in enumerate(entries)
             if isinstance(k, dict) and "d" in k and (kid is None or k.get("kid") == kid)]
    if not found:
        raise KeyFileError(f"{where}: the JWKS holds no private key" + (f" with kid {kid!r}" if kid else ""))
    if len(found) > 1:
        raise KeyFileError(f"{where}: the JWKS holds {len(found)} private keys; choose one by kid")
    index, entry = found[0]
    return _from_jwk(entry, kid=kid, alg=alg, where=where, at=f"keys[{index}]")


def _from_jwk(data: Mapping[str, Any], *, kid: str | None, alg: Alg | None, where: str,
              at: str | None = None) -> SigningKey:
    kty = data.get("kty")
    if kty not in ("RSA", "EC"):
        raise KeyFileError(f"{where}: key type {kty!r} cannot sign RS384 or ES384", path=_at(at, "kty"))
    key: RSAKey | ECKey
    try:
        key = RSAKey.import_key(dict(data)) if kty == "RSA" else ECKey.import_key(dict(data))
    except _LOAD_ERRORS:
        raise KeyFileError(f"{where}: not a usable {kty} JWK", path=at) from None
    own_kid = data.get("kid")
    chosen_kid = kid or (own_kid if isinstance(own_kid, str) and own_kid else None)
    try:
        return _signing_key(key, kid=chosen_kid, alg=alg or data.get("alg"), where=where)
    except KeyFileError as exc:
        raise KeyFileError(exc.message, path=at) from None


def _at(prefix: str | None, member: str) -> str:
    return f"{prefix}.{member}" if prefix else member


def public_jwks(*keys: SigningKey) -> dict[str, Any]:
    """The JWKS a payer registers for us (or we serve at our ``jku``): public members only."""
    return {"keys": [key.public_jwk() for key in keys]}


def write_key_pair(key: SigningKey, out_dir: Path, *, overwrite: bool = True) -> tuple[Path, Path]:
    """Write ``private-key.jwk.json`` (mode 0600 from the first byte) and the public ``jwks.json``.

    Each file is written to a temporary name and renamed, so a crash never leaves half a key behind.
    With ``overwrite=False`` an existing key file is an error rather than silently replaced.
    """
    out_dir = Path(out_dir)
    private_path = out_dir / PRIVATE_KEY_FILE
    public_path = out_dir / PUBLIC_JWKS_FILE
    if not overwrite:
        for existing in (private_path, public_path):
            if existing.exists():
                raise KeyFileError(f"{existing} already exists; refusing to replace a key file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(private_path, json.dumps(key.private_jwk(), indent=2) + "\n", 0o600)
        _write_atomically(public_path, json.dumps(public_jwks(key), indent=2) + "\n", 0o644)
    except OSError as exc:
        raise KeyFileError(f"cannot write key files to {out_dir}: {exc.strerror or type(exc).__name__}") from None
    return private_path, public_path


def _write_atomically(path: Path, text: str, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""Signing keys for SMART Backend Services and CDS Hooks: generate, load, and publish as JWKS.

Only the public half ever leaves the key file: errors name the file and the problem, never key material.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from fhir_pa.errors import KeyFileError

Alg = Literal["RS384", "ES384"]
ALGS: tuple[Alg, ...] = ("RS384", "ES384")


@dataclass(frozen=True)
class SigningKey:
    """A private key with the ``kid`` and ``alg`` it signs under."""

    kid: str
    alg: Alg
    key: RSAKey | ECKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=True))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"


def _alg_for(key: RSAKey | ECKey, alg: str | None, where: str) -> Alg:
    wanted = alg or ("RS384" if isinstance(key, RSAKey) else "ES384")
    if wanted not in ALGS:
        raise KeyFileError(f"{where}: algorithm {wanted!r} is not allowed (use RS384 or ES384)")
    if (wanted == "RS384") != isinstance(key, RSAKey):
        raise KeyFileError(f"{where}: a {key.key_type} key cannot sign {wanted}")
    if isinstance(key, ECKey) and key.curve_name != "P-384":
        raise KeyFileError(f"{where}: ES384 needs a P-384 key, not {key.curve_name}")
    return wanted


def generate_key(alg: Alg = "ES384", *, kid: str | None = None) -> SigningKey:
    """A fresh private key: RSA 3072 for RS384, P-384 for ES384. ``kid`` defaults to the RFC 7638 thumbprint."""
    if alg not in ALGS:
        raise KeyFileError(f"algorithm {alg!r} is not allowed (use RS384 or ES384)")
    key: RSAKey | ECKey = RSAKey.generate_key(3072, private=True) if alg == "RS384" else \
        ECKey.generate_key("P-384", private=True)
    return SigningKey(kid=kid or key.thumbprint(), alg=alg, key=key)


def _from_jwk(data: dict[str, Any], where: str, alg: str | None) -> SigningKey:
    try:
        key = KeySet.import_key_set({"keys": [data]}).keys[0]
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{where}: not a usable JWK ({type(exc).__name__})") from None
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise KeyFileError(f"{where}: holds no private RSA or EC key")
    return SigningKey(kid=str(data.get("kid") or key.thumbprint()), alg=_alg_for(key, alg or data.get("alg"), where),
                      key=key)


def load_signing_key(path: str | os.PathLike[str], *, kid: str | None = None, alg: Alg | None = None) -> SigningKey:
    """Load a private key from a PEM file, a private JWK, or a JWKS holding private keys."""
    file = Path(path)
    where = f"key file {file}"
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {where}: {exc.strerror or type(exc).__name__}") from None
    text = raw.strip()
    if text.startswith(b"-----BEGIN"):
        key: RSAKey | ECKey
        try:
            key = RSAKey.import_key(raw) if b"RSA" in text.split(b"\n", 1)[0] else _import_pem(raw)
        except (JoseError, ValueError, TypeError) as exc:
            raise KeyFileError(f"{where}: not a usable PEM private key ({type(exc).__name__})") from None
        if not key.is_private:
            raise KeyFileError(f"{where}: holds a public key; a private key is needed to sign")
        return SigningKey(kid=kid or key.thumbprint(), alg=_alg_for(key, alg, where), key=key)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{where}: neither PEM nor JSON") from None
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        candidates = [k for k in data["keys"] if isinstance(k, dict) and (kid is None or k.get("kid") == kid)]
        private = [k for k in candidates if "d" in k]
        if not private:
            raise KeyFileError(f"{where}: no private key" + (f" with kid {kid!r}" if kid else ""))
        if len(private) > 1:
            raise KeyFileError(f"{where}: {len(private)} private keys; say which with a kid")
        return _from_jwk(private[0], where, alg)
    if isinstance(data, dict) and "kty" in data:
        if kid is not None and data.get("kid") not in (None, kid):
            raise KeyFileError(f"{where}: its kid is not {kid!r}")
        return _from_jwk(data, where, alg)
    raise KeyFileError(f"{where}: JSON that is neither a JWK nor a JWKS")


def _import_pem(raw: bytes) -> RSAKey | ECKey:
    try:
        return RSAKey.import_key(raw)
    except (JoseError, ValueError, TypeError):
        return ECKey.import_key(raw)


def public_jwks(*keys: SigningKey) -> dict[str, Any]:
    """The JWKS a payer registers for us: public members only."""
    return {"keys": [key.public_jwk() for key in keys]}


def write_key_pair(key: SigningKey, out_dir: Path) -> tuple[Path, Path]:
    """Write ``private-key.jwk.json`` (mode 0600) and the public ``jwks.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / "private-key.jwk.json"
    public_path = out_dir / "jwks.json"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(key.private_jwk(), handle)
    private_path.chmod(0o600)
    public_path.write_text(json.dumps(public_jwks(key), indent=2) + "\n", encoding="utf-8")
    return private_path, public_path

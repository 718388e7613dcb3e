"""SMART Backend Services (private_key_jwt, client_credentials) and the keys and JWTs behind it."""

from fhir_pa.auth.assertion import client_assertion
from fhir_pa.auth.discovery import SmartConfiguration, parse_smart_configuration, smart_configuration_url
from fhir_pa.auth.keys import Alg, SigningKey, generate_key, load_signing_key, public_jwks, write_key_pair
from fhir_pa.auth.smart import SmartBackendAuth
from fhir_pa.auth.token import AccessToken, parse_token_response
from fhir_pa.auth.verify import AssertionRejected, JtiCache, unverified_issuer, verify_client_assertion

__all__ = [
    "AccessToken",
    "Alg",
    "AssertionRejected",
    "JtiCache",
    "SigningKey",
    "SmartBackendAuth",
    "SmartConfiguration",
    "client_assertion",
    "generate_key",
    "load_signing_key",
    "parse_smart_configuration",
    "parse_token_response",
    "public_jwks",
    "smart_configuration_url",
    "unverified_issuer",
    "verify_client_assertion",
    "write_key_pair",
]

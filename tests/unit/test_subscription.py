"""The PAS Subscription we ask for (notes/pas.md §2.6) and how we read the payer's copy."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fhir_pa.config import Sender
from fhir_pa.errors import ConfigurationError
from fhir_pa.pas.subscription import (
    FILTER_CRITERIA,
    PAYLOAD_CONTENT,
    TOPIC,
    SubscriptionSettings,
    build_subscription,
    sending_system_id,
    subscription_state,
)
from fhir_pa_sandbox.subscriptions import SubscriptionRequest, read_subscription

#: The Inferno 2.2.1 client suite's pattern for the filter criteria (notes/pas.md §2.6).
INFERNO_FILTER = re.compile(r"\Aorg-identifier=\S+\Z")
ENDPOINT = "https://ehr.example/pas/notify"


def _filter(resource: dict[str, Any]) -> str:
    [criteria] = resource["_criteria"]["extension"]
    assert criteria["url"] == FILTER_CRITERIA
    return str(criteria["valueString"])


def test_default_subscription_meets_pas_22_and_inferno() -> None:
    resource = build_subscription(SubscriptionSettings(endpoint=ENDPOINT), sending_system_id="8189991234",
                                  header_token="tok123")
    assert resource["criteria"] == TOPIC and resource["status"] == "requested"
    assert INFERNO_FILTER.match(_filter(resource)) and _filter(resource) == "org-identifier=8189991234"
    channel = resource["channel"]
    assert channel["type"] == "rest-hook" and channel["endpoint"] == ENDPOINT
    assert channel["_payload"]["extension"] == [{"url": PAYLOAD_CONTENT, "valueCode": "full-resource"}]
    assert channel["header"] == ["Authorization: Bearer tok123"]
    assert "heartbeatPeriod" not in channel and "extension" not in channel, "Inferno rejects heartbeats"
    accepted = read_subscription(resource)
    assert isinstance(accepted, SubscriptionRequest) and accepted.matches("8189991234")


def test_filter_key_and_value_format_follow_the_payer() -> None:
    settings = SubscriptionSettings(endpoint=ENDPOINT, filter_key="orgIdentifier", value_format="system|value",
                                    identifier_system="http://hl7.org/fhir/sid/us-npi")
    resource = build_subscription(settings, sending_system_id="1234567893", header_token="t")
    assert _filter(resource) == "orgIdentifier=http://hl7.org/fhir/sid/us-npi|1234567893"
    accepted = read_subscription(resource)
    assert isinstance(accepted, SubscriptionRequest) and accepted.matches("1234567893")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"endpoint": "ftp://x"}, "http(s) URL"),
    ({"endpoint": ENDPOINT, "filter_key": "org identifier"}, "filter key"),
    ({"endpoint": ENDPOINT, "value_format": "system|value"}, "identifier_system"),
])
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        SubscriptionSettings(**kwargs)


def test_token_must_be_one_header_safe_word() -> None:
    with pytest.raises(ConfigurationError):
        build_subscription(SubscriptionSettings(endpoint=ENDPOINT), sending_system_id="S", header_token="a\r\nX: y")


def test_sending_system_id_is_isa06_then_the_application_code() -> None:
    assert sending_system_id(Sender(interchange_sender_id="ISA06ID")) == "ISA06ID"
    assert sending_system_id(Sender()) == "FHIRPA"
    with pytest.raises(ConfigurationError):
        sending_system_id(Sender(application_sender_code="has space"))


@pytest.mark.parametrize(("resource", "status", "error", "rerequest"), [
    ({"status": "active"}, "active", None, False),
    ({"status": "requested"}, "requested", None, False),
    ({"status": "error", "error": "endpoint  answered\n500"}, "error", "endpoint answered 500", True),
    ({"status": "off"}, "off", None, True),
    ({"status": "error", "error": [{"text": "timed out"}, {"coding": [{"code": "x"}]}]}, "error", "timed out; x",
     True),
    ({}, None, None, False),
])
def test_payer_state_is_read_leniently(resource: dict[str, Any], status: str | None, error: str | None,
                                       rerequest: bool) -> None:
    state = subscription_state({"resourceType": "Subscription", **resource})
    assert (state.status, state.error, state.needs_rerequest) == (status, error, rerequest)

"""CDS Hooks discovery (``GET {base}/cds-services``): which services a payer offers and what each prefetches.

Prefetch templates are taken from here and never hard-coded (CRD found-30/31). The service ``id`` is not the hook
name: a payer may offer several services per hook or name them as it likes. Read leniently: unknown members are
kept in ``extension``, a service without ``id`` or ``hook`` is skipped with a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir_pa.errors import InvalidResponse

EXT_CRD_VERSION = "davinci-crd.version"
EXT_CONFIGURATION_OPTIONS = "davinci-crd.configuration-options"
_VERSION = re.compile(r"^\d+\.\d+$")  # looser than the IG's regex, which wrongly rejects "2.0"


@dataclass(frozen=True)
class ConfigurationOption:
    code: str
    type: str  # boolean | integer
    name: str | None
    description: str | None
    default: Any


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str | None
    description: str | None
    prefetch: Mapping[str, str]
    usage_requirements: str | None
    crd_versions: tuple[str, ...]
    configuration_options: tuple[ConfigurationOption, ...]
    extension: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Discovery:
    """A payer's discovery document, as read at ``fetched_at`` (``time.monotonic()``)."""

    base_url: str
    services: tuple[CdsService, ...]
    warnings: tuple[str, ...]
    fetched_at: float = 0.0

    def for_hook(self, hook: str) -> CdsService | None:
        """The first service answering ``hook`` (payers normally offer one per hook)."""
        return next((s for s in self.services if s.hook == hook), None)

    def service(self, service_id: str) -> CdsService | None:
        return next((s for s in self.services if s.id == service_id), None)

    def url(self, service: CdsService) -> str:
        return f"{self.base_url}/{service.id}"


def discovery_url(base_url: str) -> str:
    """The discovery URL for a CDS Hooks base (``.../cds-services``, with or without the trailing part)."""
    base = base_url.rstrip("/")
    return base if base.endswith("/cds-services") else f"{base}/cds-services"


def _options(raw: Any, where: str, warnings: list[str]) -> tuple[ConfigurationOption, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        warnings.append(f"{where} is not a list; ignored")
        return ()
    options: list[ConfigurationOption] = []
    for n, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("code"), str):
            warnings.append(f"{where}[{n}] has no code; ignored")
            continue
        options.append(ConfigurationOption(item["code"], str(item.get("type") or "boolean"), item.get("name"),
                                           item.get("description"), item.get("default")))
    return tuple(options)


def _versions(raw: Any, where: str, warnings: list[str]) -> tuple[str, ...]:
    values = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    kept = tuple(v for v in values if isinstance(v, str) and _VERSION.match(v))
    if raw is not None and len(kept) != len(values if isinstance(raw, list) else [raw]):
        warnings.append(f"{where} holds a value that is not major.minor; ignored it")
    return kept


def _service(raw: Mapping[str, Any], where: str, warnings: list[str]) -> CdsService | None:
    service_id, hook = raw.get("id"), raw.get("hook")
    if not isinstance(service_id, str) or not service_id or not isinstance(hook, str) or not hook:
        warnings.append(f"{where} lacks id or hook; skipped")
        return None
    prefetch_raw = raw.get("prefetch")
    prefetch: dict[str, str] = {}
    if isinstance(prefetch_raw, Mapping):
        for key, template in prefetch_raw.items():
            if isinstance(template, str):
                prefetch[str(key)] = template
            else:
                warnings.append(f"{where}.prefetch.{key} is not a string; ignored")
    elif prefetch_raw is not None:
        warnings.append(f"{where}.prefetch is not an object; ignored")
    extension = raw.get("extension") if isinstance(raw.get("extension"), Mapping) else {}
    assert isinstance(extension, Mapping)
    return CdsService(
        id=service_id, hook=hook, title=raw.get("title") if isinstance(raw.get("title"), str) else None,
        description=raw.get("description") if isinstance(raw.get("description"), str) else None,
        prefetch=prefetch,
        usage_requirements=raw.get("usageRequirements") if isinstance(raw.get("usageRequirements"), str) else None,
        crd_versions=_versions(extension.get(EXT_CRD_VERSION), f"{where}.extension.{EXT_CRD_VERSION}", warnings),
        configuration_options=_options(extension.get(EXT_CONFIGURATION_OPTIONS),
                                       f"{where}.extension.{EXT_CONFIGURATION_OPTIONS}", warnings),
        extension=dict(extension),
    )


def parse_discovery(data: bytes | str | Mapping[str, Any], *, base_url: str, fetched_at: float = 0.0,
                    source: str = "CDS Hooks discovery") -> Discovery:
    """Read a discovery document; :class:`InvalidResponse` when it is not one."""
    if isinstance(data, Mapping):
        document: Any = data
    else:
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidResponse(f"{source} is not JSON", path="$") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("services"), list):
        raise InvalidResponse(f"{source} has no services list", path="$.services")
    warnings: list[str] = []
    services = []
    for n, raw in enumerate(document["services"]):
        if not isinstance(raw, Mapping):
            warnings.append(f"$.services[{n}] is not an object; skipped")
            continue
        found = _service(raw, f"$.services[{n}]", warnings)
        if found is not None:
            services.append(found)
    return Discovery(discovery_url(base_url), tuple(services), tuple(warnings), fetched_at)


__all__ = ["CdsService", "ConfigurationOption", "Discovery", "discovery_url", "parse_discovery"]

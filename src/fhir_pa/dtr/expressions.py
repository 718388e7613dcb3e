"""Evaluate one SDC Expression: CQL defines (through the ELM engine), FHIRPath (fhirpathpy), x-fhir-query.

CQL: ``"Library".Define`` or a bare ``Define`` (only when the Questionnaire names exactly one cqf-library);
each define is evaluated at most once per population — one engine run state is shared by every item, so shared
includes and defines are memoised too. FHIRPath sees the SDC variables ``%resource`` (the response being built),
``%questionnaire``, ``%qitem``, ``%context``, the launch context names (``%patient``, ``%encounter``, ...) and
``variable`` extensions in scope. Failures raise :class:`ExpressionError` naming the linkId and expression.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import fhirpathpy
import httpx
from fhirpathpy.models import models

from fhir_pa.errors import FhirPaError
from fhir_pa.fhir.fhirpath_clock import fhirpath_now

from .elm import Code, Concept, CqlDate, CqlDateTime, CqlTime, ElmEngine, ElmError, FhirNode, Quantity, Sources, Tuple
from .elm import fhir as elm_fhir
from .elm.engine import PatientData, RunState
from .elm.runtime import CompiledLibrary

CQL_LANGUAGES = frozenset({"text/cql", "text/cql-identifier", "text/cql-expression"})
ELM_JSON = "application/elm+json"
FHIRPATH = "text/fhirpath"
FHIR_QUERY = "application/x-fhir-query"
_QUALIFIED = re.compile(r'^\s*(?:"([^"]+)"|([A-Za-z_][\w]*))\s*\.\s*(?:"([^"]+)"|([A-Za-z_][\w]*))\s*$')
_BARE = re.compile(r'^\s*(?:"([^"]+)"|([A-Za-z_][\w]*))\s*$')
_SUBST = re.compile(r"\{\{(.+?)\}\}")


class ExpressionError(FhirPaError):
    """An SDC expression could not be evaluated: says which item and expression, never patient values."""

    code = "expression"

    def __init__(self, message: str, *, link_id: str | None, expression: str) -> None:
        self.link_id = link_id
        self.expression = expression
        super().__init__(message, path=f"{link_id or '(questionnaire)'}: {expression}")


@dataclass(frozen=True)
class Expression:
    """An SDC/FHIR Expression value: ``language`` + ``expression`` (+ optional variable ``name``)."""

    language: str
    expression: str
    name: str | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any]) -> Expression:
        return cls(str(value.get("language") or ""), str(value.get("expression") or ""),
                   value.get("name") if isinstance(value.get("name"), str) else None)


def library_names(package_libraries: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Library canonical (url, url|version, Library/id) → the ELM identifier name inside it."""
    out: dict[str, str] = {}
    for lib in package_libraries:
        name = None
        for content in lib.get("content") or []:
            if content.get("contentType") == "application/elm+json" and content.get("data"):
                try:
                    elm = json.loads(base64.b64decode(content["data"]).decode("utf-8"))
                    name = elm["library"]["identifier"]["id"]
                except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                    name = None
                break
        if not isinstance(name, str):
            continue
        url, ver, ident = lib.get("url"), lib.get("version"), lib.get("id")
        for key in (url, f"{url}|{ver}", f"Library/{ident}", ident):
            if isinstance(key, str):
                out[key] = name
    return out


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


class CqlRunner:
    """One population's CQL evaluation: the engine, one run state, and every define result (or error) memoised."""

    def __init__(self, engine: ElmEngine, chart: Mapping[str, Any], now: CqlDateTime,
                 launch: Mapping[str, Mapping[str, Any]], default_library: str | None = None) -> None:
        self.engine = engine
        self.default_library = default_library
        data = PatientData(chart)
        args: dict[str, dict[str, Any]] = {}
        wanted = {_norm(k): v for k, v in launch.items()}
        #: parameter names bound from the launch context, per library key (for reports)
        self.bound: dict[str, list[str]] = {}
        for lib in engine.libraries.values():
            for pname in lib.parameters:
                res = wanted.get(_norm(pname))
                if res is not None:
                    args.setdefault(lib.key, {})[pname] = elm_fhir.resource(dict(res))
                    self.bound.setdefault(lib.key, []).append(pname)
        self._run = RunState(data, now, engine.sources.valuesets, args)
        self._memo: dict[tuple[str, str], Any] = {}
        self.evaluations = 0

    def _library(self, name: str | None, link_id: str | None, expr: str) -> CompiledLibrary:
        target = name or self.default_library
        if target is None:
            raise ExpressionError("a bare CQL define needs exactly one cqf-library on the Questionnaire",
                                  link_id=link_id, expression=expr)
        for lib in self.engine.libraries.values():
            if lib.name == target or lib.key == target:
                return lib
        raise ExpressionError(f"CQL library {target} is not in the package", link_id=link_id, expression=expr)

    def define(self, library: str | None, name: str, *, link_id: str | None, expr: str) -> Any:
        lib = self._library(library, link_id, expr)
        key = (lib.key, name)
        if key not in self._memo:
            self.evaluations += 1
            if name not in lib.defines:
                self._memo[key] = ExpressionError(f"library {lib.name} has no define {name}", link_id=link_id,
                                                  expression=expr)
            else:
                try:
                    self._memo[key] = self._run.define(lib, name)
                except (ElmError, FhirPaError) as exc:
                    self._memo[key] = ExpressionError(f"CQL evaluation failed: {exc.message}", link_id=link_id,
                                                      expression=expr)
        value = self._memo[key]
        if isinstance(value, ExpressionError):
            raise ExpressionError(value.message, link_id=link_id, expression=expr)
        return value

    def inline(self, text: str, *, link_id: str | None) -> Any:
        """An expression given as inline ELM JSON (legacy CRD RI content): its first define, same patient and now."""
        short = text[:60]
        try:
            elm = json.loads(text)
            statements = elm["library"]["statements"]["def"]
            name = next(d["name"] for d in statements if d.get("name") != "Patient")
        except (json.JSONDecodeError, KeyError, TypeError, StopIteration) as exc:
            raise ExpressionError("inline ELM is not an ELM library with a define", link_id=link_id,
                                  expression=short) from exc
        elm["library"]["identifier"] = {"id": f"inline-{link_id}", "version": "0"}
        try:
            lib = ElmEngine(Sources(libraries=[elm, *self.engine.sources.libraries],
                                    valuesets=self.engine.sources.valuesets)).library(f"inline-{link_id}")
            return self._run.define(lib, name)
        except (ElmError, FhirPaError) as exc:
            raise ExpressionError(f"inline ELM failed: {exc.message}", link_id=link_id, expression=short) from exc

    def evaluate(self, expr: str, *, link_id: str | None) -> Any:
        m = _QUALIFIED.match(expr)
        if m:
            return self.define(m.group(1) or m.group(2), m.group(3) or m.group(4), link_id=link_id, expr=expr)
        m = _BARE.match(expr)
        if m:
            return self.define(None, m.group(1) or m.group(2), link_id=link_id, expr=expr)
        raise ExpressionError("only CQL define references (\"Library\".Define) can be evaluated", link_id=link_id,
                              expression=expr)


def to_fhirpath(value: Any) -> Any:
    """An engine value as fhirpathpy input: FHIR JSON, ISO strings, Coding/Quantity dicts, lists."""
    if isinstance(value, (list, tuple)) and not isinstance(value, Tuple):
        return [to_fhirpath(v) for v in value]
    if isinstance(value, FhirNode):
        return value.json
    if isinstance(value, (CqlDate, CqlDateTime, CqlTime)):
        return str(value)
    if isinstance(value, Code):
        return {k: v for k, v in (("system", value.system), ("code", value.code), ("display", value.display)) if v}
    if isinstance(value, Concept):
        return {"coding": [to_fhirpath(c) for c in value.codes]}
    if isinstance(value, Quantity):
        return {"value": value.value, "unit": value.unit}
    if isinstance(value, Tuple):
        return {k: to_fhirpath(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@functools.lru_cache(maxsize=2048)
def _compiled(expr: str) -> Callable[..., list[Any]]:
    """An expression parsed once per process: parsing FHIRPath costs far more than evaluating it."""
    return cast(Callable[..., list[Any]], fhirpathpy.compile(expr, models["r4"]))


class Evaluator:
    """Evaluates expressions of any supported language for one population."""

    def __init__(self, questionnaire: Mapping[str, Any], cql: CqlRunner | None,
                 launch: Mapping[str, Mapping[str, Any]], fhir: httpx.Client | None,
                 now: _dt.datetime | None = None) -> None:
        self.questionnaire = questionnaire
        self.cql = cql
        self.launch = launch
        self.fhir = fhir
        #: The moment FHIRPath's now()/today() see, as CQL's Now() does (None: the real clock).
        self.now = now

    def environment(self, response: Mapping[str, Any], qitem: Mapping[str, Any] | None,
                    variables: Mapping[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = {name: dict(res) for name, res in self.launch.items()}
        env.update(resource=response, questionnaire=self.questionnaire, context=response)
        if qitem is not None:
            env["qitem"] = qitem
        env.update(variables)
        return env

    def fhirpath(self, expr: str, env: Mapping[str, Any], *, link_id: str | None,
                 focus: Any = None) -> list[Any]:
        try:
            with fhirpath_now(self.now):
                out = _compiled(expr)(focus if focus is not None else env.get("resource") or {}, dict(env))
        except Exception as exc:  # fhirpathpy raises bare Exceptions for syntax and evaluation
            raise ExpressionError(f"FHIRPath evaluation failed ({exc.__class__.__name__})", link_id=link_id,
                                  expression=expr) from exc
        return [_plain(v) for v in out]

    def query(self, expr: str, env: Mapping[str, Any], *, link_id: str | None) -> list[Any]:
        if self.fhir is None:
            raise ExpressionError("x-fhir-query needs a FHIR source", link_id=link_id, expression=expr)

        def substitute(m: re.Match[str]) -> str:
            found = self.fhirpath(m.group(1).strip(), env, link_id=link_id)
            return quote(str(found[0]), safe="/:,|") if found else ""

        url = _SUBST.sub(substitute, expr).lstrip("/")
        try:
            resp = self.fhir.get(url)
        except httpx.HTTPError as exc:
            raise ExpressionError(f"x-fhir-query failed ({exc.__class__.__name__})", link_id=link_id,
                                  expression=expr) from exc
        if resp.status_code != 200:
            raise ExpressionError(f"x-fhir-query returned HTTP {resp.status_code}", link_id=link_id, expression=expr)
        body = resp.json()
        if isinstance(body, dict) and body.get("resourceType") == "Bundle":
            return [e["resource"] for e in body.get("entry") or [] if isinstance(e, dict) and "resource" in e]
        return [body]

    def evaluate(self, expression: Expression, *, response: Mapping[str, Any], qitem: Mapping[str, Any] | None,
                 variables: Mapping[str, Any], link_id: str | None) -> Any:
        """The raw result: a CQL value, or a list for FHIRPath / queries."""
        lang, text = expression.language, expression.expression
        if lang == ELM_JSON and self.cql is not None:
            return self.cql.inline(text, link_id=link_id)
        if lang in CQL_LANGUAGES:
            if self.cql is None:
                raise ExpressionError("the package has no CQL libraries to evaluate", link_id=link_id,
                                      expression=text)
            return self.cql.evaluate(text, link_id=link_id)
        if lang == FHIRPATH:
            return self.fhirpath(text, self.environment(response, qitem, variables), link_id=link_id)
        if lang == FHIR_QUERY:
            return self.query(text, self.environment(response, qitem, variables), link_id=link_id)
        raise ExpressionError(f"expression language {lang or '(none)'} is not supported", link_id=link_id,
                              expression=text[:80])

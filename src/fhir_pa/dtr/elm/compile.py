"""Compile ELM JSON into Python closures, once per library.

Every ELM expression node becomes one closure ``fn(frame) -> value`` built by the node compiler registered
for its type (``nodes_*.py``); evaluation never walks the JSON tree again.
"""

from __future__ import annotations

from typing import Any

from . import nodes_basic, nodes_lists, nodes_values
from .errors import ElmError
from .runtime import HANDLERS, CompiledLibrary, Fn, Frame, FunctionDef, content_hash, spec_of
from .types import Code, Concept

#: The node modules, imported for their registrations.
NODE_MODULES = (nodes_basic, nodes_values, nodes_lists)


class Compiler:
    """Turns one library's ELM into a :class:`CompiledLibrary`."""

    def __init__(self, elm: dict[str, Any], includes: dict[str, CompiledLibrary]) -> None:
        lib = elm.get("library")
        if not isinstance(lib, dict) or not isinstance(lib.get("identifier"), dict):
            raise ElmError("not an ELM library: no library.identifier")
        self.elm = lib
        ident = lib["identifier"]
        fhir_using = next((u for u in (lib.get("usings") or {}).get("def", []) if u.get("localIdentifier") == "FHIR"),
                          None)
        self.out = CompiledLibrary(name=str(ident.get("id")), version=ident.get("version"),
                                   fhir_version=fhir_using.get("version") if fhir_using else None,
                                   content_hash=content_hash(elm))
        self.out.includes = includes
        self.out.include_paths = [d.get("path", "") for d in (lib.get("includes") or {}).get("def", [])]

    # -- declarations

    def compile(self) -> CompiledLibrary:
        lib, out = self.elm, self.out
        for cs in (lib.get("codeSystems") or {}).get("def", []):
            out.codesystems[cs["name"]] = (cs["id"], cs.get("version"))
        for vs in (lib.get("valueSets") or {}).get("def", []):
            out.valuesets[vs["name"]] = (vs["id"], vs.get("version"))
        for cd in (lib.get("codes") or {}).get("def", []):
            out.codes[cd["name"]] = self._code_def(cd)
        for cd in (lib.get("concepts") or {}).get("def", []):
            codes = tuple(self.code_ref(c) for c in cd.get("code", []))
            out.concepts[cd["name"]] = Concept(codes, cd.get("display"),
                                               frozenset() if "display" in cd else frozenset({"display"}))
        for p in (lib.get("parameters") or {}).get("def", []):
            out.parameters[p["name"]] = self.expr(p["default"]) if p.get("default") else None
        for d in (lib.get("statements") or {}).get("def", []):
            name = d["name"]
            if d.get("type") == "FunctionDef":
                params = [(o["name"], spec_of(o, "operandType", "operandTypeSpecifier")) for o in d.get("operand", [])]
                body = self.expr(d["expression"]) if d.get("expression") else None
                out.functions.setdefault(name, []).append(
                    FunctionDef(name, params, body, out, external=bool(d.get("external"))))
            else:
                out.defines[name] = self.expr(d["expression"]) if d.get("expression") else (lambda f: None)
                out.define_order.append(name)
                out.define_locators[name] = d.get("locator")
        return out

    def _code_def(self, cd: dict[str, Any]) -> Code:
        system, version = None, None
        cs = cd.get("codeSystem")
        if cs:
            owner = self.out if not cs.get("libraryName") else self.out.includes[cs["libraryName"]]
            system, version = owner.codesystems.get(cs["name"], (None, None))
        omitted = set()
        if "display" not in cd:
            omitted.add("display")
        if version is None:
            omitted.add("version")
        return Code(cd["id"], system, version, cd.get("display"), frozenset(omitted))

    def code_ref(self, ref: dict[str, Any]) -> Code:
        owner = self.out if not ref.get("libraryName") else self.out.includes[ref["libraryName"]]
        return owner.codes[ref["name"]]

    def lib_for(self, alias: str | None) -> CompiledLibrary:
        if not alias:
            return self.out
        lib = self.out.includes.get(alias)
        if lib is None:
            raise ElmError(f"included library alias {alias!r} is not resolved", library=self.out.name)
        return lib

    # -- expressions

    def expr(self, node: dict[str, Any] | None) -> Fn:
        if node is None:
            return lambda f: None
        kind = node.get("type")
        handler = HANDLERS.get(str(kind))
        if handler is None:
            loc = node.get("locator") or node.get("localId")
            name, lib = str(kind), self.out.name

            def unsupported(f: Frame) -> Any:
                raise ElmError(f"unsupported ELM expression type {name}", library=lib, locator=loc)
            return unsupported
        return handler(self, node)

    def operands(self, node: dict[str, Any]) -> list[Fn]:
        ops = node.get("operand")
        if ops is None:
            return []
        if isinstance(ops, dict):
            return [self.expr(ops)]
        return [self.expr(o) for o in ops]

    def one(self, node: dict[str, Any]) -> Fn:
        ops = self.operands(node)
        if len(ops) != 1:
            raise ElmError(f"{node.get('type')} needs one operand", library=self.out.name)
        return ops[0]

    def two(self, node: dict[str, Any]) -> tuple[Fn, Fn]:
        ops = self.operands(node)
        if len(ops) != 2:
            raise ElmError(f"{node.get('type')} needs two operands", library=self.out.name)
        return ops[0], ops[1]



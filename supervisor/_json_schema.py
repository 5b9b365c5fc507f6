"""Answers checked against a JSON Schema given as data (``llmsup map --output-schema FILE``,
``POST /ask`` with ``output_schema``), using the `jsonschema` library.

A schema is checked once, up front, against its draft's metaschema (``$schema``, default
2020-12), and every ``$ref`` must resolve inside the schema: nothing is fetched from the
network. Also refused up front: a number that is not finite (``1e999`` parses as infinity,
which JSON cannot carry back into the prompt), and a ``$ref`` loop that comes back to a
schema without going into the answer (``{"$ref": "#"}``), which no answer could ever get
through. An answer's problems read ``$.path: message``, at most `MAX_PROBLEMS` of them.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import referencing
import referencing.exceptions
import referencing.jsonschema
from pydantic import BaseModel, RootModel, model_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from referencing._core import Resolver

MAX_PROBLEMS = 5
_MAX_MESSAGE = 200


class SchemaError(ValueError):
    """A schema that is not valid JSON Schema, or that refers outside itself."""


def _multiple_of(
    validator: jsonschema.protocols.Validator, divisor: Any, instance: Any, _schema: Any
) -> Iterator[jsonschema.exceptions.ValidationError]:
    # Ours, not the library's: it rejects 0.3 as a multiple of 0.1 (binary floats).
    if not validator.is_type(instance, "number"):
        return
    if isinstance(instance, int) and isinstance(divisor, int):
        fits = instance % divisor == 0
    else:
        quotient = instance / divisor
        fits = math.isfinite(quotient) and math.isclose(
            quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9
        )
    if not fits:
        yield jsonschema.exceptions.ValidationError(f"{instance!r} is not a multiple of {divisor}")


@functools.cache
def _with_float_tolerance(
    cls: type[jsonschema.protocols.Validator],
) -> type[jsonschema.protocols.Validator]:
    extended: type[jsonschema.protocols.Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        cls, {"multipleOf": _multiple_of}
    )
    return extended


def _validator_class(schema: Mapping[str, Any]) -> type[jsonschema.protocols.Validator]:
    cls: type[jsonschema.protocols.Validator] = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    return _with_float_tolerance(cls)


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def check_schema(schema: object) -> None:
    """Raise `SchemaError`, saying where, unless ``schema`` is a usable JSON Schema."""
    if not isinstance(schema, dict):
        raise SchemaError("a JSON Schema must be a JSON object")
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise SchemaError(f"{exc.json_path}: {_short(exc.message)}") from None
    except RecursionError:
        raise SchemaError("nested too deeply") from None
    _check_finite(schema)
    resolver = _registry(schema).resolver()
    try:
        for ref in _refs(schema):
            if not ref.startswith("#"):
                raise SchemaError(f"$ref {ref!r}: only references inside the schema ('#/...')")
            try:
                resolver.lookup(ref)
            except referencing.exceptions.Unresolvable:
                raise SchemaError(f"$ref {ref!r} does not resolve") from None
        _check_ref_loops(schema, resolver)
    except RecursionError:
        raise SchemaError("nested too deeply") from None


_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _check_finite(schema: object) -> None:
    """Refuse infinity and NaN anywhere in the schema, naming where (an iterative walk)."""
    pending: list[tuple[object, str]] = [(schema, "$")]
    while pending:
        node, path = pending.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise SchemaError(f"{path}: {node!r} is not a finite number (JSON has none)")
        if isinstance(node, dict):
            for key, value in node.items():
                step = f".{key}" if _PLAIN_KEY.match(str(key)) else f"[{json.dumps(key)}]"
                pending.append((value, path + step))
        elif isinstance(node, list):
            pending.extend((value, f"{path}[{index}]") for index, value in enumerate(node))


# Keywords whose subschemas apply to the same instance (a loop through them never ends)...
_IN_PLACE = ("not", "if", "then", "else")
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAPS = ("dependentSchemas",)
# ... and those whose subschemas apply to parts of it (or are only definitions).
_BELOW = (
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_BELOW_LISTS = ("prefixItems", "items")
_BELOW_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependencies")

_Scoped: TypeAlias = "tuple[dict[str, Any], Resolver[Any]]"
"""A subschema with the resolver its references resolve against."""


def _scoped(node: dict[str, Any], resolver: Resolver[Any], root: object) -> _Scoped:
    """``node`` with the resolver its own references resolve against (its ``$id`` base)."""
    if node is not root and isinstance(node.get("$id"), str):
        resource = referencing.jsonschema.specification_with(
            str(root.get("$schema", "")) if isinstance(root, dict) else "",
            default=referencing.jsonschema.DRAFT202012,
        ).create_resource(node)
        resolver = resolver.in_subresource(resource)
    return node, resolver


def _children(node: dict[str, Any], in_place: bool) -> Iterator[dict[str, Any]]:
    """The subschemas of ``node`` that apply in place (or, else, below the instance)."""
    ones, lists, maps = (
        (_IN_PLACE, _IN_PLACE_LISTS, _IN_PLACE_MAPS)
        if in_place
        else (_BELOW, _BELOW_LISTS, _BELOW_MAPS)
    )
    for key in ones:
        if isinstance(node.get(key), dict):
            yield node[key]
    for key in lists:
        if isinstance(node.get(key), list):
            yield from (item for item in node[key] if isinstance(item, dict))
    for key in maps:
        if isinstance(node.get(key), dict):
            yield from (item for item in node[key].values() if isinstance(item, dict))


def _in_place_edges(scoped: _Scoped, root: object) -> Iterator[tuple[_Scoped, str | None]]:
    """Where validating ``scoped`` goes next on the same instance: (schema, the $ref or None)."""
    node, resolver = scoped
    for child in _children(node, in_place=True):
        yield _scoped(child, resolver, root), None
    for keyword in ("$ref", "$dynamicRef"):
        ref = node.get(keyword)
        if not isinstance(ref, str):
            continue
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            continue  # a $dynamicRef to an anchor set elsewhere at run time
        if isinstance(resolved.contents, dict):
            yield _scoped(resolved.contents, resolved.resolver, root), ref


def _check_ref_loops(schema: dict[str, Any], resolver: Resolver[Any]) -> None:
    """Refuse a ``$ref`` loop that never goes into the instance (depth-first, iterative)."""
    done: set[int] = set()
    on_path: set[int] = set()
    for start in _all_subschemas(schema, resolver):
        if id(start[0]) in done:
            continue
        stack: list[tuple[_Scoped, str | None, Iterator[tuple[_Scoped, str | None]]]] = [
            (start, None, _in_place_edges(start, schema))
        ]
        on_path.add(id(start[0]))
        while stack:
            here, _entered_by, edges = stack[-1]
            step = next(edges, None)
            if step is None:
                stack.pop()
                on_path.discard(id(here[0]))
                done.add(id(here[0]))
                continue
            target, ref = step
            if id(target[0]) in on_path:
                # A loop holds at least one $ref: subschemas alone form a tree.
                named = ref or next((r for _s, r, _e in reversed(stack) if r), "#")
                raise SchemaError(
                    f"$ref {named!r} loops back without going into the answer "
                    "(validation would never end)"
                )
            if id(target[0]) not in done:
                on_path.add(id(target[0]))
                stack.append((target, ref, _in_place_edges(target, schema)))


def _all_subschemas(schema: dict[str, Any], resolver: Resolver[Any]) -> Iterator[_Scoped]:
    pending = [_scoped(schema, resolver, schema)]
    while pending:
        scoped = pending.pop()
        yield scoped
        node, scope = scoped
        for in_place in (True, False):
            pending.extend(_scoped(c, scope, schema) for c in _children(node, in_place))


def _registry(schema: Mapping[str, Any]) -> referencing.Registry[Any]:
    specification = referencing.jsonschema.specification_with(
        str(schema.get("$schema", "https://json-schema.org/draft/2020-12/schema")),
        default=referencing.jsonschema.DRAFT202012,
    )
    resource = specification.create_resource(schema)
    # Only the schema itself: a reference anywhere else is unresolvable, never fetched.
    registry: referencing.Registry[Any] = referencing.Registry().with_resource("", resource)
    return registry


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    return _validator_class(schema)(schema, registry=_registry(schema))


def validate_json(value: Any, schema: Mapping[str, Any]) -> list[str]:
    """``$.path: message`` for each way ``value`` breaks ``schema`` (checked), best first."""
    return _problems(_validator(schema), value)


def _problems(validator: jsonschema.protocols.Validator, value: Any) -> list[str]:
    try:
        errors = sorted(validator.iter_errors(value), key=jsonschema.exceptions.relevance)
    except RecursionError:
        return ["$: nested too deeply to check"]
    return [f"{error.json_path}: {_short(error.message)}" for error in errors[:MAX_PROBLEMS]]


class SchemaAnswer(RootModel[Any]):
    """Any JSON that matches `json_schema`; `schema_model` subclasses it per schema."""

    json_schema: ClassVar[dict[str, Any]] = {}
    # Built once per schema by `_model_for`, not once per answer.
    validator: ClassVar[jsonschema.protocols.Validator]

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return copy.deepcopy(cls.json_schema)  # a copy the caller may change

    @model_validator(mode="after")
    def _matches_schema(self) -> SchemaAnswer:
        problems = _problems(type(self).validator, self.root)
        if problems:
            detail = {"problems": "; ".join(problems)}
            raise PydanticCustomError("json_schema", "{problems}", detail)
        return self


def schema_model(schema: Any, title: str = "Output") -> type[BaseModel]:
    """A pydantic model (for ``ask(output=...)``) whose JSON schema is ``schema`` and that
    accepts exactly the values it allows. Raises `SchemaError` for an unusable schema."""
    check_schema(schema)
    return _model_for(json.dumps(schema, sort_keys=True, separators=(",", ":")), title)


@functools.lru_cache(maxsize=64)
def _model_for(canonical_schema: str, title: str) -> type[SchemaAnswer]:
    name = "".join(c if c.isalnum() else "_" for c in title) or "Output"
    schema = json.loads(canonical_schema)
    namespace = {"json_schema": schema, "validator": _validator(schema), "__module__": __name__}
    return type(name, (SchemaAnswer,), namespace)

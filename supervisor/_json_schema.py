"""Answers checked against a JSON Schema given as data (``llmsup map --output-schema FILE``,
``POST /ask`` with ``output_schema``), using the `jsonschema` library.

A schema is checked once, up front, against its draft's metaschema (``$schema``, default
2020-12), and every ``$ref`` must resolve inside the schema: nothing is fetched from the
network. An answer's problems read ``$.path: message``, at most `MAX_PROBLEMS` of them.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import referencing
import referencing.exceptions
import referencing.jsonschema
from pydantic import BaseModel, RootModel, model_validator
from pydantic_core import PydanticCustomError

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
    resolver = _registry(schema).resolver()
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise SchemaError(f"$ref {ref!r}: only references inside the schema ('#/...')")
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise SchemaError(f"$ref {ref!r} does not resolve") from None


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

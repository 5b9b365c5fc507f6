"""The ``output_schema`` JSON-Schema subset: checking a schema, validating answers by it."""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import RootModel, model_validator
from pydantic_core import PydanticCustomError


class SchemaError(ValueError):
    """An ``output_schema`` this server cannot check."""


_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
    }
)
_SCHEMA_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_COUNT_KEYWORDS = (
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
)
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_SUPPORTED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "uniqueItems",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "$ref",
        "$defs",
        "definitions",
        *_COUNT_KEYWORDS,
        *_NUMBER_KEYWORDS,
    }
)
_MAX_SCHEMA_ERRORS = 5
_MAX_DEPTH = 200


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolve_ref(root: Any, ref: str) -> Any:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise SchemaError(f"$ref {ref!r}: only local references ('#/$defs/...') are supported")
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise SchemaError(f"$ref {ref!r} does not resolve")
    return node


def check_schema(schema: object) -> None:
    """Raise `SchemaError` (naming where) unless `validate_json` can check `schema` fully."""
    if not isinstance(schema, dict):
        raise SchemaError("output_schema must be a JSON object")
    try:
        _check_node(schema, "#", schema, 0)
    except RecursionError:
        raise SchemaError("output_schema is nested too deeply") from None


def _check_node(node: object, where: str, root: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise SchemaError("output_schema is nested too deeply")
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise SchemaError(f"{where}: a schema must be an object or a boolean")
    for key in node:
        if key not in _SUPPORTED and key not in _ANNOTATIONS:
            raise SchemaError(
                f"{where}: the keyword {key!r} is not supported "
                f"(supported: {', '.join(sorted(_SUPPORTED))})"
            )

    def sub(value: object, at: str) -> None:
        _check_node(value, at, root, depth + 1)

    if "type" in node:
        kinds = node["type"]
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds or any(k not in _SCHEMA_TYPES for k in kinds):
            raise SchemaError(f"{where}/type: must be one of {', '.join(_SCHEMA_TYPES)} or a list")
    if "enum" in node and not isinstance(node["enum"], list):
        raise SchemaError(f"{where}/enum: must be an array")
    for key in ("properties", "$defs", "definitions"):
        if key in node:
            if not isinstance(node[key], dict):
                raise SchemaError(f"{where}/{key}: must be an object")
            for name, value in node[key].items():
                sub(value, f"{where}/{key}/{name}")
    if "required" in node and (
        not isinstance(node["required"], list)
        or not all(isinstance(n, str) for n in node["required"])
    ):
        raise SchemaError(f"{where}/required: must be an array of strings")
    for key in ("additionalProperties", "items", "not"):
        if key in node:
            if key == "items" and isinstance(node[key], list):
                raise SchemaError(f"{where}/items: the array (tuple) form is not supported")
            sub(node[key], f"{where}/{key}")
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            if not isinstance(node[key], list) or not node[key]:
                raise SchemaError(f"{where}/{key}: must be a non-empty array of schemas")
            for index, value in enumerate(node[key]):
                sub(value, f"{where}/{key}/{index}")
    for key in _COUNT_KEYWORDS:
        value = node.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SchemaError(f"{where}/{key}: must be a non-negative integer")
    for key in _NUMBER_KEYWORDS:
        if key in node and not (_is_number(node[key]) and math.isfinite(node[key])):
            raise SchemaError(f"{where}/{key}: must be a number")
    if "multipleOf" in node and node["multipleOf"] <= 0:
        raise SchemaError(f"{where}/multipleOf: must be greater than 0")
    if "uniqueItems" in node and not isinstance(node["uniqueItems"], bool):
        raise SchemaError(f"{where}/uniqueItems: must be a boolean")
    if "$ref" in node:
        if not isinstance(node["$ref"], str):
            raise SchemaError(f"{where}/$ref: must be a string")
        target = _resolve_ref(root, node["$ref"])
        if not isinstance(target, dict | bool):
            raise SchemaError(f"{where}/$ref: {node['$ref']!r} is not a schema")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _has_type(value: object, kind: str) -> bool:
    actual = _json_type(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer":
        return actual == "integer" or (isinstance(value, float) and value.is_integer())
    return actual == kind


def _json_equal(a: object, b: object) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def validate_json(value: object, schema: Mapping[str, Any] | bool) -> list[str]:
    """Problems of `value` against `schema` (checked with `check_schema`); empty if none."""
    errors: list[str] = []
    try:
        _validate(value, schema, "$", schema, errors, 0)
    except RecursionError:
        errors.append("$: nested too deeply to check")
    return errors[:_MAX_SCHEMA_ERRORS]


def _validate(value: Any, node: Any, path: str, root: Any, errors: list[str], depth: int) -> None:
    if len(errors) >= _MAX_SCHEMA_ERRORS:
        return
    if depth > _MAX_DEPTH:
        errors.append(f"{path}: nested too deeply to check")
        return
    if node is True:
        return
    if node is False:
        errors.append(f"{path}: no value is allowed here")
        return

    def problem(message: str) -> None:
        errors.append(f"{path}: {message}")

    def sub(inner: Any, schema: Any, at: str, into: list[str] | None = None) -> None:
        _validate(inner, schema, at, root, errors if into is None else into, depth + 1)

    def matches(schema: Any) -> bool:
        trial: list[str] = []
        sub(value, schema, path, trial)
        return not trial

    if "$ref" in node:
        sub(value, _resolve_ref(root, node["$ref"]), path)
    if "type" in node:
        kinds = [node["type"]] if isinstance(node["type"], str) else node["type"]
        if not any(_has_type(value, k) for k in kinds):
            problem(f"expected {' or '.join(kinds)}, got {_json_type(value)}")
            return
    if "const" in node and not _json_equal(value, node["const"]):
        problem(f"must be {json.dumps(node['const'])}")
    if "enum" in node and not any(_json_equal(value, v) for v in node["enum"]):
        problem(f"must be one of {json.dumps(node['enum'])[:200]}")
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            problem(f"shorter than {node['minLength']} characters")
        if "maxLength" in node and len(value) > node["maxLength"]:
            problem(f"longer than {node['maxLength']} characters")
    if _is_number(value):
        if "minimum" in node and value < node["minimum"]:
            problem(f"less than {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            problem(f"greater than {node['maximum']}")
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            problem(f"not greater than {node['exclusiveMinimum']}")
        if "exclusiveMaximum" in node and value >= node["exclusiveMaximum"]:
            problem(f"not less than {node['exclusiveMaximum']}")
        if "multipleOf" in node:
            quotient = value / node["multipleOf"]
            if not math.isclose(quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9):
                problem(f"not a multiple of {node['multipleOf']}")
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            problem(f"fewer than {node['minItems']} items")
        if "maxItems" in node and len(value) > node["maxItems"]:
            problem(f"more than {node['maxItems']} items")
        if node.get("uniqueItems") and any(
            _json_equal(value[i], value[j])
            for i in range(len(value))
            for j in range(i + 1, len(value))
        ):
            problem("items are not unique")
        if "items" in node:
            for index, item in enumerate(value):
                sub(item, node["items"], _child(path, index))
    if isinstance(value, dict):
        if len(value) < node.get("minProperties", 0):
            problem(f"fewer than {node['minProperties']} properties")
        if "maxProperties" in node and len(value) > node["maxProperties"]:
            problem(f"more than {node['maxProperties']} properties")
        for name in node.get("required", ()):
            if name not in value:
                problem(f"missing required property {json.dumps(name)}")
        properties = node.get("properties", {})
        for key, item in value.items():
            if key in properties:
                sub(item, properties[key], _child(path, key))
            elif "additionalProperties" in node:
                if node["additionalProperties"] is False:
                    problem(f"unexpected property {json.dumps(key)[:100]}")
                else:
                    sub(item, node["additionalProperties"], _child(path, key))
    if "allOf" in node:
        for schema in node["allOf"]:
            sub(value, schema, path)
    if "anyOf" in node and not any(matches(s) for s in node["anyOf"]):
        problem("matches none of anyOf")
    if "oneOf" in node:
        count = sum(matches(s) for s in node["oneOf"])
        if count != 1:
            problem(f"matches {count} of oneOf, not exactly one")
    if "not" in node and matches(node["not"]):
        problem("matches the schema in 'not'")


class _SchemaAnswer(RootModel[Any]):
    """Any JSON that matches `json_schema`; subclassed per schema by `_answer_model`."""

    json_schema: ClassVar[dict[str, Any]] = {}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return copy.deepcopy(cls.json_schema)  # a copy the caller may change

    @model_validator(mode="after")
    def _matches_schema(self) -> _SchemaAnswer:
        problems = validate_json(self.root, type(self).json_schema)
        if problems:
            raise PydanticCustomError(
                "json_schema", "{problems}", {"problems": "; ".join(problems)}
            )
        return self


@functools.lru_cache(maxsize=64)
def _model_for(canonical_schema: str) -> type[_SchemaAnswer]:
    schema = json.loads(canonical_schema)
    return type("OutputSchema", (_SchemaAnswer,), {"json_schema": schema, "__module__": __name__})

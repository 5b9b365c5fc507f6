"""--output-schema: a module:Model, or a JSON Schema file and its small validator."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel, model_validator

from .._cli_options import UsageError


def load_output_model(spec: str) -> type[BaseModel]:
    """``module:Model`` (importable from the current directory) or a JSON Schema file."""
    if os.path.isfile(spec):
        try:
            with open(spec, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--output-schema {spec}: not a readable JSON file ({exc})") from exc
        if not isinstance(schema, dict):
            raise UsageError(f"--output-schema {spec}: a JSON Schema must be an object")
        return schema_model(schema, Path(spec).stem)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--output-schema {spec!r}: no such file, and not module:Model")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"--output-schema: cannot import {module_name}: {exc}") from exc
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UsageError(f"--output-schema: {spec} is not a pydantic model")
    return model


def schema_model(schema: dict[str, Any], title: str = "Output") -> type[BaseModel]:
    """A model whose JSON schema is ``schema`` and that checks values with `schema_problems`."""

    class SchemaOutput(RootModel[Any]):
        @model_validator(mode="after")
        def _matches_schema(self) -> SchemaOutput:
            problems = schema_problems(self.root, schema)
            if problems:
                more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
                raise ValueError("; ".join(problems[:5]) + more)
            return self

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return schema

    SchemaOutput.__name__ = SchemaOutput.__qualname__ = re.sub(r"\W", "_", title) or "Output"
    return SchemaOutput


_JSON_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _JSON_TYPES.get(name)
    return expected is None or isinstance(value, expected)


def schema_problems(value: Any, schema: Any, where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset described in the package docstring)."""
    if not isinstance(schema, dict):
        return []
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, name) for name in names):
            return [f"{where}: expected {' or '.join(names)}, got {json.dumps(value)[:60]}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {json.dumps(value)[:60]} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: must be {json.dumps(schema['const'])}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: more than {schema['maxItems']} items")
        for index, element in enumerate(value):
            problems += schema_problems(element, schema.get("items"), f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        problems += [
            f"{where}: missing {name!r}" for name in schema.get("required", ()) if name not in value
        ]
        extra = schema.get("additionalProperties", True)
        for key, element in value.items():
            if key in properties:
                problems += schema_problems(element, properties[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: unexpected {key!r}")
            else:
                problems += schema_problems(element, extra, f"{where}.{key}")
    return problems

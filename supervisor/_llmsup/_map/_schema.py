"""--output-schema: a module:Model, or a JSON Schema file (checked by `_json_schema`)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from pydantic import BaseModel

from ..._json_schema import SchemaError, schema_model
from .._options import BadUsage


def load_output_model(spec: str) -> type[BaseModel]:
    """``module:Model`` (importable from the current directory) or a JSON Schema file."""
    if os.path.isfile(spec):
        try:
            with open(spec, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as exc:
            raise BadUsage(f"--output-schema {spec}: not a readable JSON file ({exc})") from exc
        except RecursionError:
            raise BadUsage(f"--output-schema {spec}: nested too deeply") from None
        try:
            return schema_model(schema, Path(spec).stem)
        except SchemaError as exc:
            raise BadUsage(f"--output-schema {spec}: {exc}") from exc
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BadUsage(f"--output-schema {spec!r}: no such file, and not module:Model")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise BadUsage(f"--output-schema: cannot import {module_name}: {exc}") from exc
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise BadUsage(f"--output-schema: {spec} is not a pydantic model")
    return model

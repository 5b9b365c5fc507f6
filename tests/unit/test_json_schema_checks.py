"""Schemas refused up front: in-place $ref loops, non-finite numbers, deep nesting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from supervisor._json import schema_instructions
from supervisor._json_schema import SchemaError, check_schema, schema_model, validate_json

LOOPS: list[tuple[dict[str, Any], str]] = [
    ({"$ref": "#"}, "'#'"),
    ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "'#/$defs/a'"),
    (
        {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"$ref": "#/$defs/a"}}},
        "#/$defs/",
    ),
    ({"properties": {"x": {"$ref": "#/properties/x"}}}, "'#/properties/x'"),
    ({"anyOf": [{"type": "string"}, {"not": {"$ref": "#"}}]}, "'#'"),
    # Inside a resource of its own, "#" is that resource, not the whole file.
    ({"$defs": {"s": {"$id": "https://x.test/s", "oneOf": [{"$ref": "#"}]}}}, "'#'"),
]


@pytest.mark.parametrize(("schema", "named"), LOOPS)
def test_a_ref_loop_that_never_descends_into_the_answer_is_refused(
    schema: dict[str, Any], named: str
) -> None:
    with pytest.raises(SchemaError, match="loops") as raised:
        check_schema(schema)
    assert named in str(raised.value)


RECURSIVE_BUT_FINE: list[dict[str, Any]] = [
    {"type": "object", "properties": {"child": {"$ref": "#"}}},
    {"$defs": {"t": {"type": "array", "items": {"$ref": "#/$defs/t"}}}, "$ref": "#/$defs/t"},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "integer"}}, "$ref": "#/$defs/a"},
    {"allOf": [{"$ref": "#/$defs/n"}, {"$ref": "#/$defs/n"}], "$defs": {"n": {"minimum": 0}}},
]


@pytest.mark.parametrize("schema", RECURSIVE_BUT_FINE)
def test_recursion_through_the_answer_is_accepted(schema: dict[str, Any]) -> None:
    check_schema(schema)
    assert validate_json([[[]]] if "$defs" in schema else {"child": {}}, schema) is not None


def test_a_tree_schema_still_validates_a_tree() -> None:
    schema = {"type": "object", "properties": {"child": {"$ref": "#"}, "n": {"type": "integer"}}}
    check_schema(schema)
    assert validate_json({"child": {"child": {"n": 1}}}, schema) == []
    assert validate_json({"child": {"child": {"n": "x"}}}, schema) == [
        "$.child.child.n: 'x' is not of type 'integer'"
    ]


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"maximum": float("inf")}, "$.maximum"),
        ({"properties": {"a": {"minimum": float("-inf")}}}, "$.properties.a.minimum"),
        ({"enum": [1, float("nan")]}, "$.enum[1]"),
        ({"const": {"x": [float("inf")]}}, "$.const.x[0]"),
    ],
)
def test_a_non_finite_number_is_refused_naming_where(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(SchemaError, match="not a finite number") as raised:
        check_schema(schema)
    assert str(raised.value).startswith(where + ":")


def test_schema_from_1e999_never_reaches_the_prompt_as_infinity() -> None:
    schema = json.loads('{"type": "number", "maximum": 1e999}')
    with pytest.raises(SchemaError, match=r"\$\.maximum: .*not a finite number"):
        schema_model(schema)
    # A finite schema renders as valid JSON.
    rendered = schema_instructions(schema_model({"type": "number", "maximum": 1e300}))
    json.loads(rendered.splitlines()[3])


def test_a_schema_nested_deeper_than_python_can_walk_is_refused() -> None:
    schema: dict[str, Any] = {}
    node = schema
    for _ in range(5000):
        node["not"] = {}
        node = node["not"]
    with pytest.raises(SchemaError, match="nested too deeply"):
        check_schema(schema)

"""attrs field validators shared by every frozen configuration class, and the one-line form
of pydantic's validation errors.

Each message names the class and the field, so a bad configuration fails where it is
built and says which value was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
from pydantic import ValidationError

from ._errors import ErrorCategory

Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _where(inst: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(inst).__name__}.{attribute.name}"


def at_least(minimum: float) -> Validator:
    """The value is a number >= ``minimum`` (NaN fails too)."""

    def check(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        # `not >=` rather than `<` so that NaN is rejected as well.
        if not value >= minimum:
            raise ValueError(f"{_where(inst, attribute)} must be >= {minimum:g}, got {value!r}")

    return check


def finite(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """The value is a finite number."""
    if not math.isfinite(value):
        raise ValueError(f"{_where(inst, attribute)} must be finite, got {value!r}")


def positive_finite(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """The value is a finite number > 0."""
    if not (0 < value < math.inf):
        raise ValueError(f"{_where(inst, attribute)} must be a finite number > 0, got {value!r}")


def positive_or_none(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """None (no limit) or a number > 0."""
    if value is not None and not value > 0:
        raise ValueError(f"{_where(inst, attribute)} must be > 0 or None, got {value!r}")


def category_set(inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A frozenset of `ErrorCategory`."""
    if not isinstance(value, frozenset) or not all(isinstance(c, ErrorCategory) for c in value):
        raise TypeError(
            f"{_where(inst, attribute)} must be a frozenset of ErrorCategory, got {value!r}"
        )


def errors_in_one_line(exc: ValidationError, whole: str = "value") -> str:
    """pydantic's multi-line report as one line: ``key: problem; key: problem``.

    ``whole`` names the thing itself, for errors about it rather than one of its fields.
    """
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}" for err in exc.errors()
    )

"""`CliSpec.max_output_bytes` and the errors about output size (no processes)."""

from __future__ import annotations

import attrs
import pytest

import actors
from actors._framing import EXCERPT_BYTES, LineFramer, LineTooLong
from actors._spawn import line_too_long, output_too_large
from actors._spec import DEFAULT_MAX_OUTPUT_BYTES
from actors._verdict import RunEvidence, run_verdict
from supervisor import ErrorCategory, LLMError


def test_max_output_bytes_defaults_to_64_mib_and_must_be_positive() -> None:
    spec = actors.command(["yes"])
    assert spec.max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == 64 * 1024 * 1024
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"CliSpec\.max_output_bytes must be positive"):
            attrs.evolve(spec, max_output_bytes=bad)


def test_output_too_large_names_the_limit_and_the_cli() -> None:
    spec = attrs.evolve(actors.command(["yes"]), max_output_bytes=1000)
    failure = output_too_large(spec, 900)
    seen = RunEvidence(exit_code=None, pid=1, events=(), stderr_tail="", failure=failure)
    error = run_verdict(spec, seen)
    assert isinstance(error, LLMError)
    assert error.category is ErrorCategory.MALFORMED_OUTPUT
    assert error.message.startswith("yes printed more than max_output_bytes=1000 bytes")


def test_an_overlong_line_drops_the_buffer_and_keeps_only_excerpts() -> None:
    framer = LineFramer(1000)
    framer.feed(b"HEAD" + b"x" * 900)
    with pytest.raises(LineTooLong) as info:
        framer.feed(b"y" * 500 + b"TAIL")
    exc = info.value
    assert framer.pending_bytes == 0  # nothing of the line is held any more
    assert (exc.limit, exc.seen) == (1000, 1408)
    assert exc.head.startswith(b"HEAD") and len(exc.head) == EXCERPT_BYTES
    assert exc.tail.endswith(b"TAIL") and len(exc.tail) == EXCERPT_BYTES


def test_an_overlong_line_error_holds_no_traceback_and_shows_the_line() -> None:
    spec = actors.command(["cli"], max_line_bytes=10)
    framer = LineFramer(10)
    with pytest.raises(LineTooLong) as info:
        framer.feed(b"0123456789abc")
    failure = line_too_long(spec, info.value)
    error = failure.error(spec, "")
    assert error.original_error is info.value
    assert error.original_error.__traceback__ is None  # no frames, so no buffer kept alive
    assert error.raw_text is not None
    assert error.raw_text.startswith("0123456789") and "13 bytes seen" in error.raw_text

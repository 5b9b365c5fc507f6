"""The README's logging promises, with real fake-CLI processes.

"Logging uses stdlib `logging` on the `llmsup` logger, with structured `extra` fields:
`request_id`, `cli`, `attempt`, `category` and `duration_s`. Prompts are never logged."

Every record of the ``llmsup`` logger tree (``llmsup.engine``, ``llmsup.actor``, ...) is
captured at DEBUG, so nothing escapes the check by its level.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import ErrorCategory, LLMError, RetryConfig, open_supervisor

from ..helpers import fake

CALL_FIELDS = ("request_id", "cli", "attempt", "category", "duration_s")
# A LogRecord's own attributes: whatever else a record carries came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 1, "x", None, None))) | {
    "message",
    "asctime",
}


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    root = logging.getLogger("llmsup")
    handler = _Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _everything_in(record: logging.LogRecord) -> str:
    """A record's message, raw format, args, extra fields and exception text, as one string."""
    parts = [record.getMessage(), str(record.msg), repr(record.args), repr(_extra(record))]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def _prompt(kind: str) -> str:
    # Distinctive, and a marker no log line could contain by chance.
    return f"{kind} zebra-quartz-{uuid.uuid4().hex}"


async def test_no_record_contains_the_prompt_and_call_records_carry_the_fields(
    captured: list[logging.LogRecord], tmp_path: Path
) -> None:
    ok, flaky, denied = _prompt("ok"), _prompt("flaky"), _prompt("denied")
    plan = {
        "state_dir": str(tmp_path),
        "rules": [
            {"match": "flaky", "fail_first": 1, "fail_with": "retryable"},
            {"match": "denied", "auth_failure": True},
        ],
    }
    retry = RetryConfig(max_attempts=3, initial_delay_ms=1, max_delay_ms=5)
    async with open_supervisor(fake(plan), retry=retry) as sup:
        assert (await sup.ask(ok)).text == f"echo: {ok}"
        retried = await sup.ask(flaky)
        assert (retried.text, retried.attempts) == (f"echo: {flaky}", 2)
        with pytest.raises(LLMError) as info:
            await sup.ask(denied)
        assert info.value.category is ErrorCategory.AUTH_FAILURE

    assert captured, "nothing was logged on the llmsup logger"
    for record in captured:
        assert record.name == "llmsup" or record.name.startswith("llmsup.")
        text = _everything_in(record)
        for prompt in (ok, flaky, denied):
            assert prompt not in text, f"{record.name} logged the prompt: {text!r}"
            assert prompt.split()[1] not in text, f"{record.name} logged the prompt: {text!r}"

    calls = [r for r in captured if hasattr(r, "request_id")]
    for record in calls:
        missing = [f for f in CALL_FIELDS if not hasattr(record, f)]
        assert not missing, f"{record.getMessage()!r} lacks {missing}"
        assert record.cli == "fake"  # type: ignore[attr-defined]
        assert isinstance(record.attempt, int) and record.attempt >= 1  # type: ignore[attr-defined]
        assert isinstance(record.duration_s, float) and record.duration_s >= 0  # type: ignore[attr-defined]
    summary = [
        (r.getMessage().split(" (")[0].split(":")[0], r.attempt, r.category)  # type: ignore[attr-defined]
        for r in calls
    ]
    assert summary == [
        ("call succeeded", 1, None),
        ("attempt 1 failed", 1, "retryable"),
        ("call succeeded", 2, None),
        ("call failed", 1, "auth_failure"),
    ], summary
    ids = [r.request_id for r in calls]
    assert ids[1] == ids[2]  # the retry and its success are the same call
    assert len({ids[0], ids[1], ids[3]}) == 3  # one id per call

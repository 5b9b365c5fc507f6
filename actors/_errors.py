"""The public exception type, `LLMError`, and its categories.

Callers branch on ``error.category`` (an `ErrorCategory`): it is the one switch for what
to do next (retry, back off, give up). Unlike httpcore, whose exceptions form a small class
tree, `LLMError` is kept flat: a subclass exists only where a caller must catch one case
apart from every other (`RestartIntensityExceeded`, `WarmProcessDied`), never to stand in
for a category. Every message and stderr tail is redacted at construction, so no code path
can leak a key; a layer that knows more raises `LLMError.evolve` (a changed copy).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from ._redact import redact


def _redact_json(value: Any, secrets: tuple[str, ...]) -> Any:
    """A copy of a JSON value with every string redacted (CLI events can echo keys)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, secrets) for v in value]
    return value


class ErrorCategory(enum.Enum):
    """What went wrong, in terms that decide what to do next."""

    RETRYABLE = "retryable"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    MALFORMED_OUTPUT = "malformed_output"
    AUTH_FAILURE = "auth_failure"
    PERMANENT = "permanent"
    CIRCUIT_OPEN = "circuit_open"


RETRYABLE_CATEGORIES: frozenset[ErrorCategory] = frozenset(
    {ErrorCategory.RETRYABLE, ErrorCategory.TIMEOUT, ErrorCategory.RATE_LIMIT}
)


class LLMError(Exception):
    """A failed LLM CLI call, with the evidence of what happened.

    Attributes:
        category: the `ErrorCategory`.
        message: a one-line, redacted description.
        exit_code: the CLI's exit status, when it exited.
        stderr: the redacted tail of the CLI's stderr (at most 64 KiB).
        retry_after: seconds the CLI or API asked us to wait, when it said.
        original_error: the underlying exception, if any.
        event: the CLI event that carried the error, if any (raw JSON object).
        cli: the name of the CLI spec that failed.
        attempts: how many attempts were made before giving up (set by the retry layer).
        raw_text: the last answer, when the answer itself was the problem (MALFORMED_OUTPUT).
        lost_session: the session id the CLI was asked to continue and said it does not
            know (set by its classifier); a conversation then starts a new session.
    """

    def __init__(
        self,
        message: str,
        category: ErrorCategory = ErrorCategory.PERMANENT,
        *,
        exit_code: int | None = None,
        stderr: str = "",
        retry_after: float | None = None,
        original_error: BaseException | None = None,
        event: dict[str, Any] | None = None,
        cli: str | None = None,
        attempts: int = 1,
        is_retryable: bool | None = None,
        secrets: Iterable[str] = (),
        raw_text: str | None = None,
        lost_session: str | None = None,
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        self.category = category
        self.exit_code = exit_code
        self.stderr = redact(stderr, secrets)
        self.retry_after = retry_after
        self.original_error = original_error
        self.event = _redact_json(event, secrets) if event is not None else None
        self.cli = cli
        self.attempts = attempts
        self.raw_text = redact(raw_text, secrets) if raw_text is not None else None
        self._is_retryable = is_retryable
        self.lost_session = lost_session
        super().__init__(self.message)

    @property
    def is_retryable(self) -> bool:
        """True when trying again may succeed (transient, timeout, rate limit)."""
        if self._is_retryable is not None:
            return self._is_retryable
        return self.category in RETRYABLE_CATEGORIES

    @property
    def original(self) -> BaseException | None:
        """Alias of `original_error`, as some callers of the reference API spell it."""
        return self.original_error

    def __str__(self) -> str:
        parts = [f"[{self.category.value}]"]
        if self.cli and not self.message.startswith(self.cli):
            parts.append(f"{self.cli}:")
        parts.append(self.message)
        if self.exit_code is not None and f"code {self.exit_code}" not in self.message:
            parts.append(f"(exit code {self.exit_code})")
        if self.retry_after is not None:
            parts.append(f"(retry after {self.retry_after:g}s)")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"LLMError({self.message!r}, {self.category}, exit_code={self.exit_code!r})"

    def evolve(self, **changes: Any) -> LLMError:
        """A copy with ``changes`` applied (``attempts=3``, ``message=...``), the same class.

        Errors are complete when raised: a layer that knows more (the retry loop knows the
        attempt count) raises an evolved copy instead of changing the caught error.
        """
        fields: dict[str, Any] = {
            "message": self.message,
            "category": self.category,
            "exit_code": self.exit_code,
            "stderr": self.stderr,
            "retry_after": self.retry_after,
            "original_error": self.original_error,
            "event": self.event,
            "cli": self.cli,
            "attempts": self.attempts,
            "is_retryable": self._is_retryable,
            "raw_text": self.raw_text,
            "lost_session": self.lost_session,
        }
        fields.update(changes)
        message = fields.pop("message")
        category = fields.pop("category")
        copy = LLMError.__new__(type(self))
        LLMError.__init__(copy, message, category, **fields)
        for name, value in vars(self).items():  # a subclass's own fields come along
            if name not in vars(copy):
                setattr(copy, name, value)
        return copy

    def one_line(self) -> str:
        """`str(self)` plus the last stderr line, for command-line output."""
        text = str(self)
        tail = self.stderr.strip().splitlines()[-1:] if self.stderr.strip() else []
        if tail and tail[0] not in text:
            text += f" — stderr: {tail[0][:300]}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no traceback, no secrets)."""
        return {
            "category": self.category.value,
            "message": self.message,
            "exit_code": self.exit_code,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
            "cli": self.cli,
        }


class RestartIntensityExceeded(LLMError):
    """A supervisor saw more restarts than its intensity allows and shut down."""

    def __init__(self, message: str, *, restarts: int, period: float) -> None:
        super().__init__(message, ErrorCategory.PERMANENT)
        self.restarts = restarts
        self.period = period


class WarmProcessDied(LLMError):
    """The warm process ended while it should have been serving (restart it)."""

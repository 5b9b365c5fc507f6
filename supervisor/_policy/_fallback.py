"""When a call moves on to the next CLI of its fallback chain: a pure decision.

A call that failed on one CLI moves to the next one only when another CLI could plausibly
answer where this one could not: this CLI is rate limited (``rate_limit``), its
credentials are refused (``auth_failure``), or its circuit breaker is open
(``circuit_open``). Any other failure (a timeout, malformed output, a permanent error)
says something about the prompt or the run, and another CLI would most likely fail the
same way, so it is the call's outcome. A stream that already delivered text to its reader
never moves on (the reader would get two answers glued together).
"""

from __future__ import annotations

from actors import ErrorCategory, LLMError

FALLBACK_ON: frozenset[ErrorCategory] = frozenset(
    {ErrorCategory.RATE_LIMIT, ErrorCategory.AUTH_FAILURE, ErrorCategory.CIRCUIT_OPEN}
)
"""The failures that move a call to the next CLI of its chain."""


def next_cli(error: LLMError, position: int, chain_length: int, *, may_move: bool = True) -> bool:
    """True when a call that failed with ``error`` on CLI ``position`` (0: the primary) of a
    chain of ``chain_length`` CLIs moves on to CLI ``position + 1``.

    ``may_move``: False when the caller can no longer start over (a stream that delivered
    text).
    """
    return may_move and position + 1 < chain_length and error.category in FALLBACK_ON

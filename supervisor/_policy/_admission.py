"""Admission through the circuit breaker: admit, wait for the breaker, or reject.

A pure decision on the breaker's state machine (its clock is injected) and the time now;
the engine does the waiting and the counting.
"""

from __future__ import annotations

import attrs

from actors import ErrorCategory, LLMError

from ._breaker import CircuitBreaker, Permit


@attrs.frozen
class Admitted:
    """Run the attempt; report its end to the breaker with ``permit`` (None: no breaker)."""

    permit: Permit | None


@attrs.frozen
class WaitForBreaker:
    """The breaker refused, but the wait budget allows waiting up to ``seconds`` for it."""

    seconds: float
    rejection: LLMError


@attrs.frozen
class Rejected:
    """Fail fast with ``error`` (CIRCUIT_OPEN): no wait budget is left."""

    error: LLMError


Admission = Admitted | WaitForBreaker | Rejected

NO_BREAKER = Admitted(None)


def admit(breaker: CircuitBreaker | None, cli: str, now: float, deadline: float) -> Admission:
    """Ask ``breaker`` to admit one attempt of a call to ``cli``; it may wait until ``deadline``.

    An admission takes the breaker's permit (in half-open, a trial slot): the caller must
    record the attempt's end. A wait lasts until the breaker's announced retry time or
    the deadline, whichever comes first; the caller may wake earlier when the breaker
    changes.
    """
    if breaker is None:
        return NO_BREAKER
    try:
        return Admitted(breaker.acquire(cli=cli))
    except LLMError as rejection:
        if rejection.category is not ErrorCategory.CIRCUIT_OPEN:
            raise
        remaining = deadline - now
        if remaining <= 0:
            return Rejected(rejection)
        return WaitForBreaker(min(rejection.retry_after or remaining, remaining), rejection)

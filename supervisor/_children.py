"""Long-lived children under OTP restart rules (``Supervisor.start_child``).

A child is an async function that should keep running (a warm CLI actor, a poller). When
it ends, its `RestartType` decides whether it starts again; restarts wait an Akka-style
backoff that resets once the child has been up for a while, and each one is recorded with
the supervisor's restart intensity, which is counted per supervisor, not per child. Past
the intensity, the supervisor gives up: everything it runs is cancelled and
`open_supervisor` raises `RestartIntensityExceeded`, naming the child and its last failure.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from actors import RestartIntensityExceeded

from ._policy._intensity import RestartBackoff, RestartType

logger = logging.getLogger("llmsup.engine")


@attrs.frozen
class ChildSpec:
    """What to run and how to restart it."""

    fn: Callable[[], Awaitable[Any]]
    name: str
    restart: RestartType
    backoff: RestartBackoff


@attrs.frozen
class RestartHooks:
    """How a child reports to its supervisor."""

    on_restart: Callable[[str, str], None]  # (child name, reason); may raise the intensity error
    on_give_up: Callable[[RestartIntensityExceeded], None]
    rng: random.Random
    cli: str


async def supervise_child(child: ChildSpec, hooks: RestartHooks) -> None:
    """Run ``child`` until its restart type says stop, or the intensity is exceeded."""
    consecutive = 0
    while True:
        started_at = trio.current_time()
        try:
            await child.fn()
            abnormal, reason = False, "exited normally"
        except Exception as exc:  # a child's failure is data for the restart policy
            abnormal, reason = True, str(exc) or type(exc).__name__
            logger.warning(
                "child %s failed: %s",
                child.name,
                reason,
                extra={"cli": hooks.cli, "child": child.name},
            )
        if not child.restart.should_restart(abnormal):
            return
        if trio.current_time() - started_at >= child.backoff.reset_after_s:
            consecutive = 0  # it had been stable: start the backoff over
        try:
            hooks.on_restart(child.name, reason)
        except RestartIntensityExceeded as exc:
            hooks.on_give_up(exc)
            raise
        await trio.sleep(child.backoff.delay(consecutive, hooks.rng))
        consecutive += 1

"""What an actor tells its owner: events as they come, then exactly one `ActorDone`."""

from __future__ import annotations

import attrs

from ._errors import LLMError
from ._events import Event, Usage


@attrs.frozen
class CallOutcome:
    """A successful call, as the actor saw it."""

    text: str
    session_id: str | None
    usage: Usage | None
    cost_usd: float | None
    events: tuple[Event, ...]
    exit_code: int
    pid: int


@attrs.frozen
class ActorDone:
    """The last message of an actor: exactly one of ``outcome`` and ``error``."""

    outcome: CallOutcome | None = None
    error: LLMError | None = None


ActorMessage = Event | ActorDone

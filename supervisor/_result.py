"""`Result`: what a successful call returns. A pydantic model because it crosses the
boundary (JSON output of `llmsup`, HTTP responses, exported batches)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from actors import Event, Usage

M = TypeVar("M", bound=BaseModel)


class Result(BaseModel):
    """A successful LLM CLI call.

    Attributes:
        text: the answer text.
        session_id: the CLI's session id (None when the CLI has none).
        attempts: attempts made, including the successful one.
        duration_s: wall time of the whole call, retries and backoff included.
        usage: token usage, when the CLI reported it.
        cost_usd: cost, when the CLI reported it.
        raw_events: every event the successful attempt produced, in order.
        cli: the name of the CLI spec that answered (a fallback's, when one did).
        fallback: True when a fallback CLI answered, not the supervisor's primary one.
        request_id: the id used in logs for this call.
        exit_code: the CLI's exit status.
        data: the validated structured answer, when one was asked for.
        reasks: how often the model was asked again because its answer did not validate.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    session_id: str | None = None
    attempts: int = 1
    duration_s: float = 0.0
    usage: Usage | None = None
    cost_usd: float | None = None
    raw_events: list[Event] = Field(default_factory=list, repr=False)
    cli: str = ""
    fallback: bool = False
    request_id: str = ""
    exit_code: int | None = None
    data: Any = None
    reasks: int = 0

    def data_as(self, model: type[M]) -> M:
        """`data` typed as ``model``, for type checkers: ``sup.ask(p, output=M)`` then
        ``result.data_as(M)``. Raises TypeError, naming both, if it is something else."""
        if not isinstance(self.data, model):
            got = "no structured answer" if self.data is None else type(self.data).__name__
            raise TypeError(f"Result.data is {got}, not {model.__name__}")
        return self.data

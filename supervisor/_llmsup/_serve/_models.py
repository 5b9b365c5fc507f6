"""The request and response bodies of ``llmsup serve`` (pydantic models)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from actors import ToolPolicy, Usage

MAX_PROMPT_CHARS = 1_000_000
"""The longest prompt accepted, in characters."""


class AskRequest(BaseModel):
    """The body of ``POST /ask`` and ``POST /stream``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema the answer must match (see the module docs for the subset).",
    )
    system: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="A system prompt, passed natively where the CLI takes one (default: "
        "the server's --system).",
    )

    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*$",
        description="The model for this call, passed to the CLI's own model option "
        "(default: the server's --model). Refused (422) for a CLI that takes none.",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="The most seconds this call may take, retries included; past it the "
        "call is stopped and answered 504 timeout (default: the server's timeout; at "
        "most the server's --max-timeout).",
    )
    tools: ToolPolicy | None = Field(
        default=None,
        description="The tool policy for this call: none, read, edit or full (default: "
        "the server's --tools, which is also the most a request may ask for: more is 403).",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("the prompt is blank")
        return prompt

    @field_validator("timeout")
    @classmethod
    def _finite(cls, timeout: float | None) -> float | None:
        if timeout is not None and not math.isfinite(timeout):
            raise ValueError("the timeout must be a finite number of seconds")
        return timeout


class AskResponse(BaseModel):
    """A successful call."""

    text: str
    data: Any = None
    session_id: str | None = None
    attempts: int
    duration_s: float
    usage: Usage | None = None
    cost_usd: float | None = None
    cli: str
    request_id: str = ""
    reasks: int = 0


class ErrorDetail(BaseModel):
    """``category``: an `ErrorCategory` value, or one of the server's own (see the module
    docs); ``retry_after``: seconds, set with 429 and 503."""

    category: str
    message: str
    retry_after: float | None = None


class ErrorBody(BaseModel):
    """Every error response's body (and the data of a final ``event: error``)."""

    error: ErrorDetail


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "draining", "starting"]
    cli: str
    breaker_state: Literal["closed", "open", "half_open"] | None
    breaker_retry_after_s: float | None
    in_flight: int
    restarts: int
    retries: int
    processes_spawned: int

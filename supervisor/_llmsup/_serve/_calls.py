"""What ``/ask`` and ``/stream`` share: request checks, result bodies, client disconnects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from pydantic import BaseModel, RootModel
from starlette.types import Receive

from actors import CliSpec
from supervisor import Result, schema_instructions

from ..._json_schema import SchemaError, schema_model
from ._errors import ClientError
from ._models import AskRequest, AskResponse

T = TypeVar("T")


def _answer_model(schema: dict[str, Any]) -> type[BaseModel]:
    try:
        return schema_model(schema, "OutputSchema")
    except SchemaError as exc:
        raise ClientError(422, "invalid_request", f"output_schema: {exc}") from None


def result_response(result: Result, data: Any = None) -> AskResponse:
    if data is None and isinstance(result.data, RootModel):
        data = result.data.root
    return AskResponse(
        text=result.text,
        data=data,
        session_id=result.session_id,
        attempts=result.attempts,
        duration_s=result.duration_s,
        usage=result.usage,
        cost_usd=result.cost_usd,
        cli=result.cli,
        request_id=result.request_id,
        reasks=result.reasks,
    )


def prepare_call(body: AskRequest, spec: CliSpec) -> tuple[str, type[BaseModel] | None]:
    """Refuse (422) what no CLI could be given, before anything is started."""
    model = _answer_model(body.output_schema) if body.output_schema is not None else None
    full = body.prompt + schema_instructions(model) if model is not None else body.prompt
    try:
        full.encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError(
            422, "invalid_request", "prompt: not valid Unicode (a lone surrogate)"
        ) from None
    try:
        spec.build_argv(full)
    except ValueError as exc:
        raise ClientError(422, "invalid_request", f"prompt: {exc}") from None
    return body.prompt, model


class Gone:
    """The client disconnected."""


GONE = Gone()


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, fn: Callable[[], Awaitable[T]]) -> T | Gone:
    """``await fn()``, cancelled (its CLI process stopped) if the client goes away first."""
    outcome: T | Gone = GONE
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            await wait_for_disconnect(receive)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        try:
            outcome = await fn()
        except Exception as exc:  # re-raised below, unwrapped
            failure = exc
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return outcome

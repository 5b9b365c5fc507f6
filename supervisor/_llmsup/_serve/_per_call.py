"""A request's own options (``model``, ``timeout``, ``tools``, ``system``) within the server's
limits: checked before anything runs, then turned into what `Supervisor.ask` takes."""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Iterator, Sequence

import attrs
import trio

from actors import CliSpec, ErrorCategory, LLMError, ToolPolicy

from ._errors import ClientError
from ._models import AskRequest

Respec = Callable[[CliSpec, str | None, ToolPolicy], CliSpec]
"""``respec(spec, model, tools)``: the spec of a call of that CLI with ``model`` (None: the
server's own) under the tool policy ``tools``, built the way the server built ``spec`` (so
the CLI's own flags change, not only a field). Raises ValueError when that CLI cannot take
them (for example a model for a CLI without a model option); the message says why."""


_TOOL_ORDER: tuple[ToolPolicy, ...] = typing.get_args(ToolPolicy)  # none, read, edit, full


def tool_rank(tools: ToolPolicy) -> int:
    """none < read < edit < full."""
    return _TOOL_ORDER.index(tools)


@attrs.frozen
class CallLimits:
    """What a request may ask for.

    ``max_timeout``: the largest ``timeout`` accepted, in seconds (None: any).
    ``respec``: how a per-request model or tool policy becomes a spec (None: the server
    takes neither; a request asking for one that differs from the server's is refused).
    The most tools a request may ask for is the primary spec's ``tools`` (``--tools``).
    """

    max_timeout: float | None = None
    respec: Respec | None = None


@attrs.frozen
class CallOptions:
    """One call's options: its system prompt, its deadline (None: only the server's
    per-attempt timeout), and how each CLI's spec is derived for it (None: unchanged)."""

    system: str | None
    timeout: float | None
    adapt: Callable[[CliSpec], CliSpec] | None


def call_options(
    body: AskRequest,
    chain: Sequence[CliSpec],
    limits: CallLimits,
    default_system: str | None,
) -> CallOptions:
    """The options of a call on ``chain`` (the primary CLI, then its fallbacks).

    Raises:
        ClientError: 403 for more tools than the server allows; 422 for a timeout over
            ``max_timeout`` or a model or tool policy the CLI cannot take.
    """
    primary = chain[0]
    if (
        body.timeout is not None
        and limits.max_timeout is not None
        and body.timeout > limits.max_timeout
    ):
        raise ClientError(
            422,
            "invalid_request",
            f"timeout: {body.timeout:g} s is more than this server allows "
            f"(at most {limits.max_timeout:g} s, its --max-timeout)",
        )
    tools = body.tools if body.tools is not None else primary.tools
    if tool_rank(tools) > tool_rank(primary.tools):
        raise ClientError(
            403,
            "forbidden",
            f"tools: {tools!r} is more than this server allows "
            f"(at most {primary.tools!r}, its --tools)",
        )
    system = body.system if body.system is not None else default_system
    if body.model is None and tools == primary.tools:
        return CallOptions(system, body.timeout, None)
    if limits.respec is None:
        field = "model" if body.model is not None else "tools"
        raise ClientError(
            422, "invalid_request", f"{field}: this server takes no per-request {field}"
        )
    return CallOptions(system, body.timeout, _adapter(chain, limits.respec, body.model, tools))


def _adapter(
    chain: Sequence[CliSpec], respec: Respec, model: str | None, tools: ToolPolicy
) -> Callable[[CliSpec], CliSpec]:
    """Each CLI's spec for the call, built now (so a refusal is a 422 before anything
    runs). The model is the primary CLI's; a fallback keeps its own model."""
    variants: dict[str, CliSpec] = {}
    for position, spec in enumerate(chain):
        asked = model if position == 0 else None
        try:
            variants.setdefault(spec.name, respec(spec, asked, tools))
        except ValueError as exc:
            field = "model" if asked is not None else "tools"
            raise ClientError(422, "invalid_request", f"{field}: {exc}") from None

    def adapt(spec: CliSpec) -> CliSpec:
        variant = variants.get(spec.name)
        if variant is None:  # not a CLI of this server's chain: never widen anything
            return spec
        return attrs.evolve(variant, cwd=spec.cwd)  # the call's own folder

    return adapt


def deadline_error(timeout: float, cli: str) -> LLMError:
    """The error of a call stopped by its request's ``timeout``."""
    return LLMError(
        f"the call did not finish within its timeout of {timeout:g} s (the request's "
        "timeout); its CLI was stopped",
        ErrorCategory.TIMEOUT,
        cli=cli,
    )


@contextlib.contextmanager
def request_deadline(timeout: float | None, cli: str) -> Iterator[None]:
    """Run the block within ``timeout`` seconds; past it, raise `deadline_error`."""
    if timeout is None:
        yield
        return
    with trio.move_on_after(timeout) as scope:
        yield
    if scope.cancelled_caught:
        raise deadline_error(timeout, cli)

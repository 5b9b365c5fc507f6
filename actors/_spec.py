"""`CliSpec`: everything the process actor needs to know to run one kind of CLI.

A spec is a frozen value. It builds argv and the environment, and names the adapter that
turns output lines into events and the classifier that turns an exit into an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from ._backend import Spawner
from ._errors import LLMError
from ._events import ErrorReport, Event
from ._redact import child_secrets
from ._subreaper import SUPERVISOR_MARK

PromptVia = Literal["arg", "stdin"]
OutputFormat = Literal["text", "jsonl"]
# What the agent may do. "none": the model answers and nothing runs; "read": read within
# the working folder; "edit": also write there; "full": everything the CLI can do.
ToolPolicy = Literal["none", "read", "edit", "full"]
TOOL_POLICIES: tuple[ToolPolicy, ...] = ("none", "read", "edit", "full")

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
# Linux refuses any single argv string over 32 pages (MAX_ARG_STRLEN) with E2BIG.
MAX_ARG_BYTES = 32 * 4096 - 1
DEFAULT_STDERR_TAIL_BYTES = 64 * 1024
_MARK_BYTES = SUPERVISOR_MARK.encode()
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
ARG_STANDBY_REFUSAL = (
    "the prompt is passed as an argument (prompt_via='arg'), so a process cannot start "
    "before its prompt"
)


class Adapter(Protocol):
    """Turns one CLI's output lines into typed events. One instance per process."""

    def parse_line(self, line: str) -> Sequence[Event]:
        """Events for one complete stdout line (without its newline). Never raises."""
        ...

    def finish(self) -> Sequence[Event]:
        """Events to emit at end of output (for example a text CLI's final result)."""
        ...


@attrs.frozen
class ProcessExit:
    """What the actor saw of a finished process: the evidence a classifier judges."""

    cli: str
    exit_code: int | None
    stderr_tail: str
    events: tuple[Event, ...]
    secrets: tuple[str, ...] = ()
    # Bytes of prompt the actor wrote to stdin (None: stdin was not a pipe): a CLI that
    # says it got no input after a non-empty write lost the prompt, it was not sent none.
    stdin_bytes: int | None = None


class Classifier(Protocol):
    """Decides whether a finished process failed, and how. None means success."""

    def classify(self, exit: ProcessExit) -> LLMError | None: ...


def _check_argv(
    _inst: object, _attr: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    if not value:
        raise ValueError("CliSpec.argv must name a program (it is empty)")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise TypeError(f"CliSpec.argv[{index}] must be a str, got {type(item).__name__}")
        if "\0" in item:
            raise ValueError(f"CliSpec.argv[{index}] contains a NUL byte")


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _name_set(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _env_dict(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


def _positive(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"CliSpec.{attribute.name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class CliSpec:
    """How to run one CLI.

    Attributes:
        name: short name used in errors, logs and statistics.
        argv: the program and its fixed arguments (never run through a shell).
        prompt_via: "arg" appends the prompt as the last argv element, verbatim;
            "stdin" writes it to stdin and then closes stdin.
        prompt_prefix_args: arguments placed just before the prompt (for example ``("--",)``
            so a prompt starting with ``-`` can never become a flag).
        env: variables added to (and overriding) the child's environment.
        inherit_env: start from this process's environment (True) or from an empty one.
        cwd: working directory of the child.
        adapter_factory: makes the per-process `Adapter`.
        classifier: turns a finished process into an `LLMError`, or None for success.
        max_line_bytes: longest accepted stdout line; longer is MALFORMED_OUTPUT.
        stderr_tail_bytes: how much of stderr to keep for errors.
        max_output_bytes: most stdout a call (or a warm turn) keeps for its result
            (default 64 MiB). Every stdout byte read counts (each line is kept, as its
            events or as the text an adapter holds for the answer); past the limit the
            call fails with MALFORMED_OUTPUT naming the limit and the CLI. A stream
            consumer gets every event up to the limit as it comes, then the error. Must
            be positive.
        output_schema: given a JSON Schema, a spec using the CLI's native schema option.
        session: how to resume a session or keep a warm process (`SessionSupport`).
        stderr_watch: called with each stderr line; an `ErrorReport` it returns joins the
            events (a terminal one stops the CLI at once). For CLIs that report trouble
            only on stderr, such as retry attempts.
        tools: the `ToolPolicy` the CLI runs under (the factories map it onto each CLI's
            own flags). Under "none" the runtime is the second line of defence: a
            `ToolUse` event whose name is not in ``permitted_tools`` stops the process at
            once, and the call fails PERMANENT naming the tool and the policy.
        permitted_tools: tool names let through even under "none" (claude's
            ``StructuredOutput``, which is how it returns structured data).
        sweep_session: after the CLI's group empties, also look for members of its session
            in another group (a /proc scan, about 1 ms a call) and stop them. On for the
            real CLIs, whose helpers can leave the group (codex's bubblewrap sandbox).
        with_system: given a system prompt, a spec whose CLI gets it natively (replacing
            the CLI's own agent instructions where it allows); None: the caller replays it
            into the user text.
        backend: the `Spawner` that starts this CLI (`actors._backend`); None (the
            default) means real processes. `actors.simulated` gives a spec whose backend
            runs the fake CLI's script in process, on trio's clock.
        standby_refusal: why a process of this CLI cannot be started ahead of its call
            (``open_supervisor(standby=N)``), or None when it can. A spec with
            ``prompt_via="arg"`` cannot whatever this says (see `standby_refusal_reason`).
        stdin_encoder: with ``prompt_via="stdin"``, turns the prompt into the bytes written
            to stdin (None: the prompt's UTF-8, verbatim); claude's gives one stream-json
            user message line.
        standby_prelude: bytes a standby process is sent on stdin as soon as it starts,
            before its prompt (default none). A cold call never gets them.
        standby_writes_stderr: the CLI writes to stderr before it reads its prompt; a
            standby process doing so is kept (default False: any output discards it).
    """

    name: str
    argv: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=_check_argv)
    adapter_factory: Callable[[], Adapter]
    classifier: Classifier
    prompt_via: PromptVia = attrs.field(
        default="arg", validator=attrs.validators.in_(("arg", "stdin"))
    )
    prompt_prefix_args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    # Compared but not hashed (a dict is unhashable); equal specs still hash alike.
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_env_dict, hash=False)
    inherit_env: bool = True
    cwd: str | None = None
    max_line_bytes: int = attrs.field(default=DEFAULT_MAX_LINE_BYTES, validator=_positive)
    stderr_tail_bytes: int = attrs.field(default=DEFAULT_STDERR_TAIL_BYTES, validator=_positive)
    max_output_bytes: int = attrs.field(default=DEFAULT_MAX_OUTPUT_BYTES, validator=_positive)
    stderr_watch: Callable[[str], ErrorReport | None] | None = None
    # A spec that also passes a JSON Schema to the CLI's own structured-output option.
    output_schema: Callable[[dict[str, Any]], CliSpec] | None = attrs.field(default=None, eq=False)
    # How this CLI continues a conversation (None: history replay). See actors._warm.
    session: SessionSupport | None = attrs.field(default=None, eq=False)
    tools: ToolPolicy = attrs.field(default="none", validator=attrs.validators.in_(TOOL_POLICIES))
    permitted_tools: frozenset[str] = attrs.field(default=frozenset(), converter=_name_set)
    sweep_session: bool = False
    # A spec that passes a system prompt through the CLI's own mechanism.
    with_system: Callable[[str], CliSpec] | None = attrs.field(default=None, eq=False)
    # What starts the CLI (None: a real process).
    backend: Spawner[CliSpec] | None = None
    # Why this CLI cannot run standby processes (None: it can; see `standby_refusal_reason`).
    standby_refusal: str | None = None
    # How a prompt becomes stdin bytes (None: its UTF-8), e.g. claude's stream-json line.
    stdin_encoder: Callable[[str], bytes] | None = None
    # What a standby process gets on stdin at once, before its prompt (gemini: a newline,
    # without which it stops waiting for stdin after 500 ms).
    standby_prelude: bytes = b""
    # The CLI writes to stderr before it reads its prompt (gemini's start-up warnings): a
    # standby process doing so is not discarded, and the call's stderr gets those lines.
    standby_writes_stderr: bool = False

    def standby_refusal_reason(self) -> str | None:
        """Why a process of this spec cannot be started before its prompt is known
        (``standby_refusal``, or the prompt being an argument); None when it can."""
        if self.standby_refusal is not None:
            return self.standby_refusal
        if self.prompt_via == "arg":
            return ARG_STANDBY_REFUSAL
        return None

    def build_argv(self, prompt: str) -> list[str]:
        """The exact argv for one call. The prompt is one element, never split or quoted."""
        if "\0" in prompt:
            raise ValueError("the prompt contains a NUL byte, which no argv can carry")
        try:
            size = len(prompt.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the prompt is not valid Unicode: a lone surrogate {prompt[exc.start]!r} at "
                f"position {exc.start} (no CLI can receive it)"
            ) from exc
        argv = list(self.argv)
        if self.prompt_via == "arg" and size > MAX_ARG_BYTES:
            raise ValueError(
                f"the prompt is {size} bytes, more than one command-line argument can hold "
                f"({MAX_ARG_BYTES}); pass it on stdin instead (prompt_via='stdin')"
            )
        if self.prompt_via == "arg":
            argv.extend(self.prompt_prefix_args)
            argv.append(prompt)
        return argv

    def build_env(self) -> dict[str, str]:
        """The child's environment: inherited (or empty) plus ``env`` on top, plus the
        supervisor's mark (`SUPERVISOR_MARK`, this process's pid), by which a descendant
        that escapes its session is known to be ours (see `actors._subreaper`)."""
        base = dict(os.environ) if self.inherit_env else {}
        base.update(self.env)
        base[SUPERVISOR_MARK] = str(os.getpid())
        return base

    def spawn_env(self) -> dict[bytes, bytes]:
        """`build_env` as the bytes mapping handed to the kernel, built for speed.

        Speed trick: copying ``os.environ`` as text decodes every variable, and the spawn
        encodes them again (about 20 us a call, 7% of the overhead figure); the bytes copy
        of the inherited environment costs a dict copy. The result is the same mapping.
        """
        if self.inherit_env:
            inherited = getattr(os.environ, "_data", None)  # CPython's bytes store
            base = dict(inherited) if isinstance(inherited, dict) else dict(os.environb)
        else:
            base = {}
        for name, value in self.env.items():
            base[os.fsencode(name)] = os.fsencode(value)
        base[_MARK_BYTES] = str(os.getpid()).encode()
        return base

    def secrets(self) -> tuple[str, ...]:
        """Literal secret values its child receives (``env``, and inherited variables whose
        names look secret), to redact from output; computed when an error is built."""
        return child_secrets(self.env, inherit=self.inherit_env)

    def stdin_payload(self, prompt: str) -> bytes | None:
        """Bytes to write to stdin, or None when stdin is /dev/null."""
        if self.prompt_via == "stdin":
            if self.stdin_encoder is not None:
                return self.stdin_encoder(prompt)
            return prompt.encode("utf-8")
        return None


@attrs.frozen
class WarmLaunch:
    """How to start a warm process and how to hand it one turn."""

    argv: tuple[str, ...]
    encode_turn: Callable[[str], bytes]


@attrs.frozen
class SessionSupport:
    """What a CLI offers for multi-turn use.

    ``resume(session_id)`` gives a spec whose next call continues that session in a new
    process (claude ``--resume``, codex ``exec resume``, gemini ``--resume``);
    ``warm(session_id | None)`` gives a `WarmLaunch`: argv for a long-lived process that
    reads one turn per stdin line (claude ``--input-format stream-json``).
    """

    resume: Callable[[str], CliSpec]
    warm: Callable[[str | None], WarmLaunch] | None = None

"""System prompts go to the CLI natively (``spec.with_system``) on ask, stream, map and
every conversation turn; only a spec without it gets them replayed into the user text.

The CLI is a tiny Python program that answers with the argv it received, and its spec's
``with_system`` adds ``--system TEXT`` to its argv.
"""

from __future__ import annotations

import json

import attrs

from actors import CliSpec
from actors._spec import SessionSupport
from supervisor import open_supervisor

from ..helpers import ARGV_ECHO, argv_list, python_cli


def with_native_system(spec: CliSpec) -> CliSpec:
    def with_system(system: str) -> CliSpec:
        return attrs.evolve(spec, argv=(*spec.argv, "--system", system))

    return attrs.evolve(spec, with_system=with_system)


NATIVE = with_native_system(python_cli(ARGV_ECHO, name="echo"))
REPLAYED = python_cli(ARGV_ECHO, name="echo")


async def test_ask_passes_the_system_prompt_natively() -> None:
    async with open_supervisor(NATIVE) as sup:
        result = await sup.ask("hello", system="be brief")
    assert argv_list(result.text) == ["--system", "be brief", "hello"]


async def test_without_with_system_it_is_replayed_into_the_user_text() -> None:
    async with open_supervisor(REPLAYED) as sup:
        result = await sup.ask("hello", system="be brief")
    assert argv_list(result.text) == ["System: be brief\n\nUser: hello"]


async def test_stream_passes_the_system_prompt_natively() -> None:
    async with open_supervisor(NATIVE) as sup, sup.stream("hello", system="be brief") as events:
        text = await events.text()
    assert argv_list(text) == ["--system", "be brief", "hello"]


async def test_map_and_map_stream_pass_it_natively() -> None:
    async with open_supervisor(NATIVE) as sup:
        outcomes = await sup.map(["a", "b"], system="S")
        async with sup.map_stream(["c"], system="S") as results:
            streamed = [done.outcome async for done in results]
    texts = [getattr(o, "text", "") for o in [*outcomes, *streamed]]
    assert [argv_list(t) for t in texts] == [["--system", "S", p] for p in ("a", "b", "c")]


async def test_a_fallback_without_with_system_gets_it_in_the_text() -> None:
    refused = python_cli(
        "import sys; sys.stderr.write('401 Unauthorized\\n'); sys.exit(1)", name="refused"
    )
    async with open_supervisor(with_native_system(refused), fallback=[REPLAYED]) as sup:
        result = await sup.ask("hello", system="be brief")
    assert result.cli == "echo"
    assert argv_list(result.text) == ["System: be brief\n\nUser: hello"]


def resumable(spec: CliSpec, native: bool) -> CliSpec:
    """``spec`` with a session: resuming adds ``--resume ID`` (and keeps with_system)."""

    def resume(session_id: str) -> CliSpec:
        resumed = attrs.evolve(spec, argv=(*spec.argv, "--resume", session_id))
        return with_native_system(resumed) if native else resumed

    return attrs.evolve(spec, session=SessionSupport(resume=resume))


# Answers in the native JSON-lines dialect with a session id, echoing its argv.
SESSION_ECHO = (
    "import json, sys; "
    "print(json.dumps({'type': 'session_started', 'session_id': 'S1'})); "
    "print(json.dumps({'type': 'result', 'text': json.dumps(sys.argv[1:]), "
    "'session_id': 'S1'}))"
)


async def test_every_resumed_turn_keeps_the_native_system_prompt() -> None:
    spec = with_native_system(
        resumable(python_cli(SESSION_ECHO, name="sess", output_format="jsonl"), native=True)
    )
    async with open_supervisor(spec) as sup:
        conv = sup.conversation(system_prompt="be brief", mode="resume")
        first = await conv.send("one")
        second = await conv.send("two")
    assert argv_list(first.text) == ["--system", "be brief", "one"]
    assert argv_list(second.text) == ["--resume", "S1", "--system", "be brief", "two"]


async def test_a_replayed_conversation_passes_it_natively_not_in_the_text() -> None:
    async with open_supervisor(NATIVE) as sup:
        conv = sup.conversation(system_prompt="be brief", mode="replay")
        await conv.send("one")
        second = await conv.send("two")
    argv = argv_list(second.text)
    assert argv[:2] == ["--system", "be brief"]
    assert "System:" not in argv[2]
    assert "User: one" in argv[2] and argv[2].endswith("two")


async def test_without_with_system_a_conversation_still_replays_it_once() -> None:
    spec = resumable(python_cli(SESSION_ECHO, name="sess", output_format="jsonl"), native=False)
    async with open_supervisor(spec) as sup:
        conv = sup.conversation(system_prompt="be brief", mode="resume")
        first = await conv.send("one")
        second = await conv.send("two")
    assert argv_list(first.text) == ["System: be brief\n\nUser: one"]
    assert argv_list(second.text) == ["--resume", "S1", "two"]
    assert json.loads(second.text)  # a JSON list

"""The provider emulator speaks tools: ``Fault(kind="tool_call")``, tool results, StructuredOutput.

Wire-level tests (httpx against `open_emulator`) pin each API's tool-call shape, the follow-up
that carries the tool's result, and the request fields recorded for tools (`tools`, `system`,
`tool_results`, `body_bytes`). The real-CLI tests check that each real binary accepts the
emulator's tool call, runs the tool and sends its result back, and that ``actors.claude()``
with ``output=Model`` gets its data through claude's ``StructuredOutput`` tool.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from pydantic import BaseModel

import actors
from actors._fakes._emulator import (
    CliName,
    Emulator,
    EmulatorRule,
    Fault,
    RulesFileError,
    cli_environment,
    open_emulator,
)
from actors._fakes._emulator._rules import parse_rules
from supervisor import RetryConfig, open_supervisor

from .test_emulator import (
    cli_argv,
    cli_binary,
    cli_env,
    client,
    each_cli,
    final_text,
    parse_sse,
    run_cli,
)

READ = Fault(kind="tool_call", tool_name="Read", tool_input={"file_path": "/etc/hostname"})

ANTHROPIC_PATH = "/v1/messages?beta=true"
OPENAI_PATH = "/v1/responses"
GEMINI_STREAM_PATH = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
GEMINI_JSON_PATH = "/v1beta/models/gemini-test:generateContent"


def anthropic_body(*, stream: bool = True, **changes: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "system": [{"type": "text", "text": "billing"}, {"type": "text", "text": "be brief"}],
        "tools": [
            {"name": "Read", "input_schema": {"type": "object"}},
            {"name": "Bash", "input_schema": {"type": "object"}},
        ],
        "messages": [{"role": "user", "content": "read the file"}],
        **changes,
    }


def anthropic_follow_up(result: Any, **changes: Any) -> dict[str, Any]:
    """A conversation in which the model called Read and the CLI answered with `result`."""
    messages = [
        {"role": "user", "content": "read the file"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": result},
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            ],
        },
    ]
    return anthropic_body(messages=messages, **changes)


def openai_body(*, stream: bool = True, **changes: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "stream": stream,
        "instructions": "you are codex",
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "function", "function": {"name": "nested_fn"}},
            {"type": "namespace", "name": "agents", "tools": [{"type": "function", "name": "a1"}]},
            {"type": "web_search"},
        ],
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "read the file"}],
            }
        ],
        **changes,
    }


def gemini_body(**changes: Any) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": "read the file"}]}],
        "systemInstruction": {"parts": [{"text": "you are gemini"}, {"text": "be brief"}]},
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "read_file", "parameters": {"type": "object"}},
                    {"name": "glob"},
                ]
            }
        ],
        **changes,
    }


async def post_json(emulator: Emulator, path: str, body: dict[str, Any] | bytes) -> Any:
    async with client(emulator) as http:
        if isinstance(body, bytes):
            response = await http.post(path, content=body)
        else:
            response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with open_emulator() as running:
        yield running


# ---------------------------------------------------------------------------------------------
# Anthropic Messages
# ---------------------------------------------------------------------------------------------


async def test_anthropic_tool_call_stream_shape_and_recorded_fields(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=READ, chunks=3)])
    raw = json.dumps(anthropic_body(), indent=2).encode()
    response = await post_json(emulator, ANTHROPIC_PATH, raw)
    events = parse_sse(response.text)
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    block = events[1].data["content_block"]
    assert block["type"] == "tool_use"
    assert block["name"] == "Read"
    assert block["id"].startswith("toolu_")
    assert block["input"] == {}
    deltas = [e.data["delta"] for e in events if e.event == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"input_json_delta"}
    assert json.loads("".join(d["partial_json"] for d in deltas)) == {"file_path": "/etc/hostname"}
    assert events[6].data["delta"]["stop_reason"] == "tool_use"

    (request,) = emulator.requests
    assert request.tools == ("Read", "Bash")
    assert request.system == "billing\nbe brief"
    assert request.tool_results == ()
    assert request.tool_call == "Read"
    assert request.fault == "tool_call"
    assert request.texts == ()
    assert request.body_bytes == len(raw)


async def test_anthropic_tool_result_gets_the_reply_as_text(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(match="read the", reply="all read: {prompt}", fault=READ)])
    response = await post_json(emulator, ANTHROPIC_PATH, anthropic_follow_up("my-host\n"))
    events = parse_sse(response.text)
    assert events[1].data["content_block"]["type"] == "text"
    texts = [e.data["delta"]["text"] for e in events if e.event == "content_block_delta"]
    assert "".join(texts) == "all read: read the file"
    assert events[-2].data["delta"]["stop_reason"] == "end_turn"
    (request,) = emulator.requests
    # The tool result's turn is answered for the prompt that started it (the rule matched).
    assert request.prompt == "read the file"
    assert request.rule_index == 0
    assert request.tool_results == ("my-host\n",)
    assert request.tool_call is None
    assert request.texts == ("all read: read the file",)


async def test_anthropic_tool_result_blocks_and_a_new_prompt(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(fault=READ)])
    blocks = [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}]
    follow_up = anthropic_follow_up(blocks)
    # A new prompt after the tool's result: a fresh turn, so the model calls the tool again.
    follow_up["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
        {"role": "user", "content": "and again"},
    ]
    response = await post_json(emulator, ANTHROPIC_PATH, follow_up)
    assert parse_sse(response.text)[1].data["content_block"]["name"] == "Read"
    (request,) = emulator.requests
    assert request.tool_results == ("line one\nline two",)
    assert request.tool_call == "Read"


async def test_anthropic_tool_call_without_streaming(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=READ)])
    message = (await post_json(emulator, ANTHROPIC_PATH, anthropic_body(stream=False))).json()
    assert message["stop_reason"] == "tool_use"
    (block,) = message["content"]
    assert block["type"] == "tool_use"
    assert block["name"] == "Read"
    assert block["input"] == {"file_path": "/etc/hostname"}
    follow_up = anthropic_follow_up("my-host", stream=False)
    message = (await post_json(emulator, ANTHROPIC_PATH, follow_up)).json()
    assert message["content"] == [{"type": "text", "text": "all read"}]
    assert message["stop_reason"] == "end_turn"


# ---------------------------------------------------------------------------------------------
# OpenAI Responses
# ---------------------------------------------------------------------------------------------

EXEC = Fault(kind="tool_call", tool_name="exec_command", tool_input={"cmd": "cat /etc/hostname"})


def openai_follow_up(output: Any, **changes: Any) -> dict[str, Any]:
    body = openai_body(**changes)
    body["input"] += [
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "exec_command",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": output},
    ]
    return body


async def test_openai_function_call_stream_shape_and_recorded_fields(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=EXEC, chunks=2)])
    response = await post_json(emulator, OPENAI_PATH, openai_body())
    events = parse_sse(response.text)
    assert [e.event for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    item = events[5].data["item"]
    assert item["type"] == "function_call"
    assert item["name"] == "exec_command"
    assert item["call_id"].startswith("call_")
    assert json.loads(item["arguments"]) == {"cmd": "cat /etc/hostname"}
    deltas = "".join(e.data["delta"] for e in events[2:4])
    assert deltas == item["arguments"] == events[4].data["arguments"]
    assert events[1].data["item"]["call_id"] == item["call_id"]
    completed = events[-1].data["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == [item]

    (request,) = emulator.requests
    assert request.tools == ("exec_command", "nested_fn", "a1", "web_search")
    assert request.system == "you are codex"
    assert request.tool_call == "exec_command"
    assert request.tool_results == ()


async def test_openai_function_call_output_gets_the_reply_as_text(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=EXEC)])
    parts = [{"type": "input_text", "text": "my-host"}]
    for output, text in (("my-host\n", "my-host\n"), (parts, "my-host")):
        emulator.clear_requests()
        response = await post_json(emulator, OPENAI_PATH, openai_follow_up(output))
        events = parse_sse(response.text)
        deltas = [e.data["delta"] for e in events if e.event == "response.output_text.delta"]
        assert "".join(deltas) == "all read"
        (request,) = emulator.requests
        assert request.tool_results == (text,)
        assert request.tool_call is None


async def test_openai_function_call_without_streaming(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=EXEC)])
    reply = (await post_json(emulator, OPENAI_PATH, openai_body(stream=False))).json()
    (item,) = reply["output"]
    assert item["type"] == "function_call"
    assert item["name"] == "exec_command"
    assert json.loads(item["arguments"]) == {"cmd": "cat /etc/hostname"}
    reply = (await post_json(emulator, OPENAI_PATH, openai_follow_up("x", stream=False))).json()
    assert reply["output"][0]["content"][0]["text"] == "all read"


# ---------------------------------------------------------------------------------------------
# Gemini
# ---------------------------------------------------------------------------------------------

READ_FILE = Fault(kind="tool_call", tool_name="read_file", tool_input={"file_path": "a.txt"})


def gemini_follow_up(response: Any) -> dict[str, Any]:
    return gemini_body(
        contents=[
            {"role": "user", "parts": [{"text": "read the file"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "read_file", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "read_file", "response": response}}],
            },
        ]
    )


async def test_gemini_function_call_shape_and_recorded_fields(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=READ_FILE, chunks=4)])
    response = await post_json(emulator, GEMINI_STREAM_PATH, gemini_body())
    (event,) = parse_sse(response.text)  # a functionCall part is never split
    (candidate,) = event.data["candidates"]
    assert candidate["content"]["parts"] == [
        {"functionCall": {"name": "read_file", "args": {"file_path": "a.txt"}}}
    ]
    assert candidate["finishReason"] == "STOP"
    body = (await post_json(emulator, GEMINI_JSON_PATH, gemini_body())).json()
    assert body["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "read_file"

    request = emulator.requests[0]
    assert request.tools == ("read_file", "glob")
    assert request.system == "you are gemini\nbe brief"
    assert request.tool_call == "read_file"
    assert request.tool_results == ()


async def test_gemini_function_response_gets_the_reply_as_text(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="all read", fault=READ_FILE)])
    for response, text in (({"output": "my-host\n"}, "my-host\n"), ({"n": 1}, '{"n":1}')):
        emulator.clear_requests()
        answer = await post_json(emulator, GEMINI_STREAM_PATH, gemini_follow_up(response))
        (event,) = parse_sse(answer.text)
        assert event.data["candidates"][0]["content"]["parts"] == [{"text": "all read"}]
        (request,) = emulator.requests
        assert request.tool_results == (text,)
        assert request.prompt == "read the file"
        assert request.tool_call is None


# ---------------------------------------------------------------------------------------------
# StructuredOutput (claude --json-schema)
# ---------------------------------------------------------------------------------------------

DATA = {"score": 0.5, "reasons": ["clear"]}


def structured_body(*, stream: bool = True, follow: bool = False) -> dict[str, Any]:
    body = anthropic_body(stream=stream)
    body["tools"] = [{"name": "StructuredOutput", "input_schema": {"type": "object"}}]
    if follow:
        body["messages"] += [
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "StructuredOutput", "input": DATA}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
            },
        ]
    return body


async def test_structured_output_is_called_with_a_json_reply(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply=json.dumps(DATA), chunks=3)])
    events = parse_sse((await post_json(emulator, ANTHROPIC_PATH, structured_body())).text)
    assert events[1].data["content_block"]["name"] == "StructuredOutput"
    partial = "".join(
        e.data["delta"]["partial_json"] for e in events if e.event == "content_block_delta"
    )
    assert json.loads(partial) == DATA
    message = (await post_json(emulator, ANTHROPIC_PATH, structured_body(stream=False))).json()
    assert message["content"][0]["input"] == DATA
    # The follow-up carrying the tool's result gets a short text.
    message = (
        await post_json(emulator, ANTHROPIC_PATH, structured_body(stream=False, follow=True))
    ).json()
    assert message["content"] == [{"type": "text", "text": "Done."}]
    assert [r.tool_call for r in emulator.requests] == ["StructuredOutput"] * 2 + [None]


async def test_structured_prose_and_non_json_replies_are_text(emulator: Emulator) -> None:
    emulator.set_rules(
        [
            EmulatorRule(match="read", reply=json.dumps(DATA), structured="prose", times=1),
            EmulatorRule(match="read", reply="not json", times=1),
            EmulatorRule(match="read", reply="[1, 2]"),  # JSON, but not an object
        ]
    )
    for expected in (json.dumps(DATA), "not json", "[1, 2]"):
        message = (await post_json(emulator, ANTHROPIC_PATH, structured_body(stream=False))).json()
        assert message["content"] == [{"type": "text", "text": expected}]
    # Without a StructuredOutput tool offered, a JSON reply is plain text.
    message = (await post_json(emulator, ANTHROPIC_PATH, anthropic_body(stream=False))).json()
    assert message["content"] == [{"type": "text", "text": "[1, 2]"}]


async def test_structured_output_enforce_reminder_is_not_the_prompt(emulator: Emulator) -> None:
    # claude's re-ask after a prose answer; the echo rule must answer the real prompt.
    body = structured_body(stream=False)
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": "some prose"}]},
        {
            "role": "user",
            "content": "[structured-output-enforce] You MUST call the StructuredOutput tool.",
        },
    ]
    message = (await post_json(emulator, ANTHROPIC_PATH, body)).json()
    assert message["content"] == [{"type": "text", "text": "echo: read the file"}]
    emulator.set_rules([EmulatorRule(match="read the file", reply=json.dumps(DATA))])
    message = (await post_json(emulator, ANTHROPIC_PATH, body)).json()
    assert message["content"][0]["name"] == "StructuredOutput"


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([{"fault": {"kind": "tool_call"}}], "0.fault: Value error, kind 'tool_call' needs"),
        (
            [{"fault": {"kind": "status", "status": 500, "tool_name": "Read"}}],
            "0.fault: Value error, tool_name does not apply to kind 'status'",
        ),
        (
            [{"fault": {"kind": "tool_call", "tool_name": "Read", "tool_input": [1]}}],
            "0.fault.tool_input: Input should be a valid dictionary",
        ),
        ([{"structured": "maybe"}], "0.structured: Input should be 'tool' or 'prose'"),
    ],
)
def test_tool_rules_validation_names_the_field(rules: object, expected: str) -> None:
    with pytest.raises(RulesFileError, match="^" + expected.replace("(", r"\(")):
        parse_rules(rules)


def test_tool_call_rule_from_json() -> None:
    (rule,) = parse_rules(
        [
            {
                "match": "x",
                "structured": "prose",
                "fault": {"kind": "tool_call", "tool_name": "Bash", "tool_input": {"c": [1]}},
            }
        ]
    )
    assert rule.fault is not None
    assert rule.fault.tool_arguments == {"c": [1]}
    assert rule.structured == "prose"
    assert Fault(kind="tool_call", tool_name="Read").tool_arguments == {}


# ---------------------------------------------------------------------------------------------
# The real CLIs
# ---------------------------------------------------------------------------------------------

# Each CLI's file-reading tool, asked to read a file of the working folder.
READERS: dict[CliName, tuple[str, dict[str, Any]]] = {
    "claude": ("Read", {"file_path": "{work}/note.txt"}),
    "codex": ("exec_command", {"cmd": "cat note.txt"}),
    "gemini": ("read_file", {"file_path": "note.txt"}),
}


@pytest.mark.parametrize("cli", each_cli())
async def test_real_cli_runs_the_emulated_tool_call(cli: CliName, tmp_path: Path) -> None:
    """Raw CLI (no llmsup policy): the emulator's tool call is understood and answered."""
    content = "note-content-1f3a"
    name, arguments = READERS[cli]
    arguments = {k: v.replace("{work}", str(tmp_path / "work")) for k, v in arguments.items()}
    fault = Fault(kind="tool_call", tool_name=name, tool_input=arguments)
    async with open_emulator([EmulatorRule(reply="all read", fault=fault)]) as emulator:
        env = cli_env(cli, emulator, tmp_path)
        (tmp_path / "work" / "note.txt").write_text(content + "\n")
        with trio.fail_after(240):  # a hang guard
            run = await run_cli(cli_argv(cli, "read the note"), env, tmp_path, seconds=200)
    assert run.returncode == 0, run.stderr
    assert final_text(cli, run) == "all read"
    first, second = emulator.generation_requests()
    assert name in first.tools
    assert first.tool_call == name
    assert any(content in result for result in second.tool_results), second.tool_results
    assert second.tool_call is None


class Verdict(BaseModel):
    score: float
    reasons: list[str]


@pytest.mark.parametrize("cli", each_cli("claude"))
async def test_real_claude_structured_output_returns_the_data(cli: CliName, tmp_path: Path) -> None:
    reply = '{"score": 0.5,   "reasons": ["clear"]}'  # spaced: claude re-serialises tool input
    async with open_emulator([EmulatorRule(match="Judge", reply=reply)]) as emulator:
        env = cli_environment("claude", emulator.base_url, tmp_path / "home", inherit=os.environ)
        spec = actors.claude(str(cli_binary("claude")), env=env, cwd=str(tmp_path))
        async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
            with trio.fail_after(240):  # a hang guard
                result = await sup.ask("Judge this", output=Verdict, max_reasks=0)
    assert result.data == Verdict(score=0.5, reasons=["clear"])
    assert result.reasks == 0
    (request,) = emulator.generation_requests()
    assert "StructuredOutput" in request.tools
    # The data came through the tool call, not as text that the library parsed.
    assert request.tool_call == "StructuredOutput"
    assert request.texts == ()
    assert json.loads(result.text) == json.loads(reply)
    assert result.text != reply

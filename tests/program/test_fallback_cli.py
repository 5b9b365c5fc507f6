"""``llmsup ask/chat/serve --fallback``, ``--system``, ``--tools`` and serve's scratch folders
(issue 11 parts 4-5, issue 12 bugs 1 and 3), with real processes."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import httpx
import pytest
import trio

from actors import ErrorCategory
from supervisor._llmsup._main import EXIT_CODES, _parser
from supervisor._llmsup._options import spec_from_args
from supervisor._llmsup._serve import serve

from ..helpers import python_cli
from .test_cli import _chat, llmsup

REFUSED = f"{shlex.quote(sys.executable)} -S -c " + shlex.quote(
    "import sys; sys.stderr.write('Error: 401 Unauthorized\\n'); sys.exit(1)"
)
CRASHING = f"{shlex.quote(sys.executable)} -S -c " + shlex.quote(
    "import sys; sys.stderr.write('segmentation fault\\n'); sys.exit(1)"
)
ARGV_ECHO = f"{shlex.quote(sys.executable)} -S -c " + shlex.quote(
    "import json, sys; print(json.dumps(sys.argv[1:]))"
)


def test_ask_moves_to_the_fallback_and_says_so() -> None:
    done = llmsup("ask", "--command", REFUSED, "--fallback", "fake", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the fake's answer
    assert "llmsup: answered by fake (fallback)" in done.stderr


def test_ask_without_a_fallback_answer_says_nothing_about_it() -> None:
    done = llmsup("ask", "--cli", "fake", "--fallback", "fake", "hello")
    assert done.returncode == 0, done.stderr
    assert "fallback" not in done.stderr


def test_ask_json_names_the_cli_that_answered() -> None:
    done = llmsup("ask", "--json", "--command", REFUSED, "--fallback", "fake", "hello")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["cli"], body["fallback"]) == ("fake", True)


def test_ask_reports_the_error_that_opened_the_breaker_not_circuit_open() -> None:
    done = llmsup(
        "ask", "--command", CRASHING, "--failure-threshold", "1", "--initial-delay-ms", "1", "hi"
    )
    assert done.returncode == EXIT_CODES[ErrorCategory.RETRYABLE]
    assert done.returncode != EXIT_CODES[ErrorCategory.CIRCUIT_OPEN]
    assert "segmentation fault" in done.stderr
    assert "circuit_open" not in done.stderr.split(":", 2)[1]


def test_ask_system_is_replayed_for_a_command_without_a_native_option() -> None:
    done = llmsup("ask", "--command", ARGV_ECHO, "--system", "be brief", "hello")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["System: be brief\n\nUser: hello"]


def test_chat_moves_to_the_fallback_with_a_note() -> None:
    done = _chat("hello\n/quit\n", "--command", REFUSED, "--fallback", "fake")
    assert done.returncode == 0, done.stderr
    assert "(note: answered by fake, a fallback)" in done.stdout
    assert "fake> " in done.stdout


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(argv)


@pytest.mark.parametrize("tools", ["none", "read", "edit", "full"])
def test_tools_sets_the_policy_of_fake_and_command_specs(tools: str) -> None:
    assert spec_from_args(_args("ask", "--tools", tools, "x")).tools == tools
    assert spec_from_args(_args("ask", "--tools", tools, "--command", "echo", "x")).tools == tools


def test_tools_defaults_to_none_on_every_subcommand(tmp_path: Path) -> None:
    for sub in (["ask", "x"], ["chat"], ["serve"], ["map", "in.jsonl", "-o", "out.jsonl"]):
        args = _args(*sub)
        assert args.tools == "none"
        assert spec_from_args(args).tools == "none"
    with pytest.raises(SystemExit):
        _args("ask", "--tools", "everything", "x")


PRINT_CWD = "import os, sys; open('left-behind', 'w').write('x'); print(os.getcwd())"


async def test_serve_runs_each_call_in_its_own_removed_scratch_folder() -> None:
    spec = python_cli(PRINT_CWD, name="pwd")
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        url = await nursery.start(
            lambda task_status: serve(
                spec, "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = (await client.post("/ask", json={"prompt": "a"})).json()
            second = (await client.post("/ask", json={"prompt": "b"})).json()
        stop.set()
    folders = [first["text"].strip(), second["text"].strip()]
    assert folders[0] != folders[1]
    _check_removed_scratch(folders)
    assert first["cli"] == "pwd"


def _check_removed_scratch(folders: list[str]) -> None:
    assert all(os.path.isabs(f) and f != os.getcwd() for f in folders)
    assert not any(os.path.exists(f) for f in folders)  # removed, with what the CLI left


async def test_serve_cwd_runs_every_call_there(tmp_path: Path) -> None:
    spec = python_cli(PRINT_CWD, name="pwd")
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        url = await nursery.start(
            lambda task_status: serve(
                spec,
                "127.0.0.1",
                0,
                cwd=str(tmp_path),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = (await client.post("/ask", json={"prompt": "a"})).json()
        stop.set()
    _check_same_folder(body["text"].strip(), tmp_path)


def _check_same_folder(reported: str, expected: Path) -> None:
    assert Path(reported).resolve() == expected.resolve()


async def test_serve_falls_back_and_passes_the_system_prompt() -> None:
    refused = python_cli(
        "import sys; sys.stderr.write('429 Too Many Requests\\n'); sys.exit(1)", name="primary"
    )
    echo = python_cli("import json, sys; print(json.dumps(sys.argv[1:]))", name="echo")
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        url = await nursery.start(
            lambda task_status: serve(
                refused,
                "127.0.0.1",
                0,
                fallback=[echo],
                system="server default",
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            asked = (await client.post("/ask", json={"prompt": "hi", "system": "own"})).json()
            streamed = (await client.post("/stream", json={"prompt": "hi"})).text
        stop.set()
    assert asked["cli"] == "echo"
    assert json.loads(asked["text"]) == ["System: own\n\nUser: hi"]
    final = streamed.strip().split("\n\n")[-1]
    assert final.startswith("event: result")
    result = json.loads(final.split("data: ", 1)[1])
    assert result["cli"] == "echo"
    assert json.loads(result["text"]) == ["System: server default\n\nUser: hi"]

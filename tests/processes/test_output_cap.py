"""`CliSpec.max_output_bytes` with real processes: unbounded output fails the call."""

from __future__ import annotations

import os
import shutil
import sys

import attrs
import pytest
import trio

import actors
from supervisor import ErrorCategory, LLMError, RetryConfig, open_supervisor
from tests.helpers import live_processes_with, marker, wait_until_gone

ONE_ATTEMPT = RetryConfig(max_attempts=1)


@pytest.mark.skipif(shutil.which("yes") is None, reason="needs yes(1)")
async def test_yes_as_a_cli_fails_at_the_output_cap() -> None:
    token = marker()
    spec = attrs.evolve(actors.command(["yes"]), max_output_bytes=1024 * 1024)
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        with trio.fail_after(60), pytest.raises(LLMError) as info:  # a hang guard only
            await sup.ask(token)
    assert info.value.category is ErrorCategory.MALFORMED_OUTPUT
    assert "yes printed more than max_output_bytes=1048576" in info.value.message
    assert live_processes_with(token) == []


LINE = "z" * 999
# Prints 40 lines, waits for the go-ahead file (so the two batches cannot share a read),
# then 40 more.
TWO_BATCHES = f"""
import os, sys, time
for _ in range(40):
    sys.stdout.write({LINE!r} + "\\n")
sys.stdout.flush()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
for _ in range(40):
    sys.stdout.write({LINE!r} + "\\n")
sys.stdout.flush()
"""


async def test_a_stream_consumer_sees_every_event_up_to_the_cap_then_the_error(
    tmp_path: os.PathLike[str],
) -> None:
    go = os.path.join(os.fspath(tmp_path), f"go-{marker()}")
    spec = attrs.evolve(
        actors.command([sys.executable, "-S", "-c", TWO_BATCHES]),
        # The first batch (40_000 bytes) fits; less than one line more does not, so however
        # the second batch is split into reads, none of its lines is delivered whole.
        max_output_bytes=40_500,
    )
    seen = 0
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        with trio.fail_after(60), pytest.raises(LLMError) as info:  # a hang guard only
            async with sup.stream(go) as events:
                async for event in events:
                    if event.type == "text_delta":
                        seen += 1
                        if seen == 40:
                            open(go, "w").close()  # noqa: ASYNC230 - a tiny local file
    assert seen == 40  # every event of the first batch, none of the second
    assert info.value.category is ErrorCategory.MALFORMED_OUTPUT
    assert "max_output_bytes=40500" in info.value.message


async def test_a_warm_turn_fails_at_the_output_cap_and_the_next_turn_is_fine() -> None:
    token = marker()
    big = "w" * 90_000
    # Turns whose prompt carries "big" answer 90 kB in 3 lines; the others answer briefly.
    plan = {"rules": [{"match": "big", "text": big, "chunks": 3}, {"match": token, "chunks": 1}]}
    spec = attrs.evolve(actors.fake(plan), max_output_bytes=40_000)
    async with (
        open_supervisor(spec, retry=ONE_ATTEMPT) as sup,
        sup.conversation(mode="warm") as conv,
    ):
        with trio.fail_after(60), pytest.raises(LLMError) as info:  # a hang guard only
            await conv.send(f"{token} big")
        after = await conv.send(f"{token} small")
    assert info.value.category is ErrorCategory.MALFORMED_OUTPUT
    assert "fake printed more than max_output_bytes=40000" in info.value.message
    assert after.text == f"echo: {token} small"
    assert await wait_until_gone(token, 10) == []

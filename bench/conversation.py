"""Turn latency of a conversation with the real claude: warm actor vs a cold process per turn.

    bash .ci/install-clis.sh && python bench/conversation.py [--turns 10]

Both conversations run against the provider emulator on loopback, in the same run, turns
alternating between them. "warm" keeps one claude process in stream-json input mode (turn
2 onward pays no start-up); "cold" starts a new process per turn that resumes the session.
Target: the warm median <= 0.1x the cold median (turn 1 of each excluded: both start a
process there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _clis import CLI_DIR

import actors
from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import Conversation, open_supervisor


async def timed_turn(conv: Conversation, text: str) -> float:
    start = trio.current_time()
    await conv.send(text)
    return trio.current_time() - start


async def main(turns: int) -> None:
    binary = CLI_DIR / "claude"
    if not binary.exists():
        raise SystemExit("claude is not installed: run .ci/install-clis.sh")
    with tempfile.TemporaryDirectory(prefix="llmsup-bench-conv-") as home:
        async with open_emulator() as emulator:
            env = cli_environment("claude", emulator.base_url, Path(home) / "h", inherit=os.environ)
            spec = actors.claude(str(binary), env=env, cwd=home)
            async with open_supervisor(spec) as sup:
                warm = sup.conversation(mode="warm")
                cold = sup.conversation(mode="resume")
                timings: dict[str, list[float]] = {"warm": [], "cold": []}
                for turn in range(turns):
                    order = [("warm", warm), ("cold", cold)]
                    if turn % 2:
                        order.reverse()
                    for label, conv in order:
                        timings[label].append(await timed_turn(conv, f"turn {turn}"))
                await warm.aclose()
    warm_median = statistics.median(timings["warm"][1:])
    cold_median = statistics.median(timings["cold"][1:])
    print(f"claude, {turns} turns each, median of turns 2..{turns}:")
    print(f"  warm actor        {warm_median * 1000:7.1f} ms per turn")
    print(f"  cold process      {cold_median * 1000:7.1f} ms per turn")
    print(f"  ratio warm/cold   {warm_median / cold_median:.3f}x   (target <= 0.1x)")
    first_warm, first_cold = timings["warm"][0], timings["cold"][0]
    print(f"  first turns: warm {first_warm * 1000:.0f} ms, cold {first_cold * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    trio.run(main, parser.parse_args().turns)

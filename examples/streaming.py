"""Streaming: print the answer as the CLI writes it.

    python examples/streaming.py [--cli fake|claude|codex|gemini]

``async with sup.stream(prompt) as events`` yields typed events as they arrive (text
deltas, tool use, usage, the final result); a failed call raises `LLMError` from the
iteration itself, and leaving the block early stops the CLI process at once. The reference
document's ``wrapper.stream_response(prompt)`` is `LLMCliWrapper.stream_response`: just the
text chunks, equally safe to abandon. The fake CLI answers a fixed story in 8 chunks,
50 ms apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from actors import TextDelta, ToolUse
from examples._common import cli_spec, make_parser, run
from supervisor import LLMCliWrapper, open_supervisor

FAKE_PLAN: dict[str, object] = {
    "text": "Once upon a time, a trio nursery kept every child task in sight, and none leaked.",
    "chunks": 8,
    "chunk_gap_s": 0.05,
}


async def main(cli: str = "fake") -> None:
    spec = cli_spec(cli, FAKE_PLAN)
    async with open_supervisor(spec) as sup:
        # 1. Every event, typed; print the text as it arrives.
        deltas = 0
        async with sup.stream("Tell me a very short story about trio.") as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    deltas += 1
                    print(event.text, end="", flush=True)
                elif isinstance(event, ToolUse):
                    print(f"\n[tool: {event.name}]", flush=True)
        print()
        result = events.result
        assert result is not None  # set once the iteration has finished without error
        print(f"stream: {deltas} text deltas, session {result.session_id}, usage {result.usage}")

        # 2. Leaving early: breaking out of the block stops the CLI (no process is left).
        async with sup.stream("Tell me a long story.") as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    print(f"first chunk only: {event.text!r}")
                    break
        stats = sup.statistics()
        print(f"left early: {stats.in_flight} calls in flight, {stats.processes_spawned} spawned")

    # 3. The reference document's spelling: text chunks only.
    wrapper = LLMCliWrapper(spec)
    chunks: list[str] = []
    async for chunk in wrapper.stream_response("Tell me the story again."):
        chunks.append(chunk)
        print(chunk, end="", flush=True)
    print()
    print(f"stream_response: {len(chunks)} chunks, {len(''.join(chunks))} characters")


if __name__ == "__main__":
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    run(main, args.cli)

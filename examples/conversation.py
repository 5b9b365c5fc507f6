"""A multi-turn conversation: three turns, export the history, load it and go on.

    python examples/conversation.py [--cli fake|claude|codex|gemini]

The reference document's "Example 2: Multi-Turn Conversation", on this library.
``sup.conversation()`` carries the context the best way the CLI allows: a warm process fed
one turn at a time (the fake CLI and claude), the CLI's own session resumed per turn
(codex, gemini), or the trimmed history replayed into every prompt. The exported file
holds the messages with timestamps and the CLI's session id, so a later run continues
the same session. The reference's own `ConversationManager` (history replay through any
call function, here ``sup.ask``) is shown last. The fake CLI answers ``echo: <prompt>``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from examples._common import cli_spec, make_parser, run
from supervisor import ConversationManager, Result, open_supervisor

FAKE_PLAN: dict[str, object] = {"chunks": 4, "chunk_gap_s": 0.01}

TURNS = [
    "Review this code: def mean(xs): return sum(xs) / len(xs)",
    "What happens with an empty list?",
    "Suggest a fix.",
]


def show(label: str, result: Result | str) -> None:
    """One line per answer (the fake CLI echoes whole prompts, history included)."""
    text = result.text if isinstance(result, Result) else result
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    shown = lines[0][:60] if len(lines) == 1 else f"{lines[0][:40]} … {lines[-1][:40]}"
    print(f"{label}: {shown}")


async def main(cli: str = "fake") -> None:
    spec = cli_spec(cli, FAKE_PLAN)
    with tempfile.TemporaryDirectory(prefix="llmsup-example-") as tmp:
        history_file = Path(tmp) / "conversation.json"
        async with open_supervisor(spec) as sup:
            # 1. Three turns. `async with` stops a warm CLI process as soon as we are done.
            async with sup.conversation(
                system_prompt="You are a careful code reviewer.", max_turns=10
            ) as conv:
                print(f"mode: {conv.mode}")
                for text in TURNS:
                    result = await conv.send(text)
                    show(f"turn {conv.turn_count}", result)
                first_session = conv.session_id
                conv.export_history(history_file)
            print(f"exported {len(conv.history)} messages to {history_file.name}")

            # 2. Later (another process, another day): load the file and continue.
            async with sup.conversation(history=history_file) as again:
                result = await again.send("Thanks! Summarize the review in one line.")
                show(f"turn {again.turn_count} (continued)", result)
                print(f"same session: {again.session_id == first_session}")

            # 3. The reference document's ConversationManager: any async call function
            #    that takes a prompt works; it replays the kept history in each prompt.
            manager = ConversationManager(
                system_prompt="You are a helpful assistant", max_history=10
            )
            show("manager turn 1", await manager.send_message("What is Python?", sup.ask))
            show("manager turn 2", await manager.send_message("Tell me more", sup.ask))
            print(f"manager: {manager.turn_count} turns, {len(manager.history)} messages kept")

            stats = sup.statistics()
            print(f"statistics: {stats.succeeded} calls, {stats.processes_spawned} processes")


if __name__ == "__main__":
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    run(main, args.cli)

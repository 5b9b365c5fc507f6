"""Memory measured in a fresh subprocess, against a baseline taken just before.

A pytest session's own peak RSS says nothing about one test (an earlier test may have
peaked higher), and its RSS carries every earlier test's garbage; a fresh interpreter
running only the code under test does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent(
    """
    import gc, json, sys
    sys.path.insert(0, {root!r})

    def vm(key):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))

    def reset_peak():
        # Linux: writing 5 resets VmHWM to the current RSS.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False
    """
)


def run_probe(body: str, timeout: float = 300) -> dict[str, int]:
    """Run ``body`` (Python, after `PRELUDE`) in a fresh interpreter; it prints one JSON
    object as its last line, which is returned."""
    code = PRELUDE.format(root=os.getcwd()) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def peak_growth_of_one_huge_line_call(line_bytes: int, max_line_bytes: int) -> dict[str, int]:
    """Peak RSS growth (KiB) of one call whose CLI prints a ``line_bytes`` line, in a fresh
    interpreter, over a baseline taken just before the call."""
    return run_probe(
        f"""
        import trio
        import actors
        from supervisor import LLMError, RetryConfig, open_supervisor

        async def main():
            plan = {{"oversized_line_bytes": {line_bytes}}}
            spec = actors.fake(plan, max_line_bytes={max_line_bytes})
            async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
                await actors_warm_up(sup)
                base = vm("VmRSS")
                peak_was_reset = reset_peak()
                before_peak = vm("VmHWM")
                message = ""
                try:
                    await sup.ask("huge line")
                except LLMError as error:
                    message = error.message
                peak = vm("VmHWM")
            print(json.dumps({{
                "base": base, "peak": peak, "before_peak": before_peak,
                "reset": peak_was_reset, "ok": "max_line_bytes" in message,
            }}))

        async def actors_warm_up(sup):
            try:
                await sup.ask("warm-up")
            except LLMError:
                pass

        trio.run(main)
        """
    )

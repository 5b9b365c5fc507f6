"""The ``llmsup`` pytest plugin, run by pytester: a leaking test FAILS naming what it left, a
clean one passes, ``@given`` tests are checked once, the seed option replays and is reported,
the emulator fixture serves or skips with a one-line reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest

from ..helpers import live_processes_with, marker

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = ROOT / ".clis" / "node_modules" / ".bin"


def test_installing_the_package_registers_the_plugin(pytester: pytest.Pytester) -> None:
    # Every installed copy's metadata, not `entry_points()`, which keeps one distribution
    # per name (a stale egg-info in the working tree would hide the installed one).
    found = {
        (ep.name, ep.value)
        for dist in distributions()
        if dist.metadata["Name"] == "llm-cli-supervisor"
        for ep in dist.entry_points
        if ep.group == "pytest11"
    }
    assert ("llmsup", "supervisor._testing._plugin") in found
    # And pytest loads it with no -p and no conftest.
    pytester.makepyfile("def test_seed(llmsup_seed):\n    assert isinstance(llmsup_seed, int)\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins:*llm-cli-supervisor*"])


def _kill_all(token: str) -> None:
    for pid in live_processes_with(token):
        os.kill(pid, signal.SIGKILL)


def test_a_test_that_leaves_a_process_running_fails_naming_it(pytester: pytest.Pytester) -> None:
    token = marker()
    pytester.makepyfile(
        f"""
        import subprocess, sys

        def test_leaks(llmsup_no_leaks):
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{token}"])
        """
    )
    try:
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        (pid,) = live_processes_with(token)
        result.stdout.fnmatch_lines(
            [
                "*llmsup_no_leaks: 1 process(es) started by the test still run:*",
                f"*pid {pid} (parent {os.getpid()}): {sys.executable} -c import time*{token}*",
            ]
        )
    finally:
        _kill_all(token)


def test_an_escapee_reparented_away_is_still_found(pytester: pytest.Pytester) -> None:
    # A double fork into a new session: the process is no descendant of the test any more,
    # but it carries the check's token in its environment.
    token = marker()
    pytester.makepyfile(
        f"""
        import subprocess, sys

        CODE = (
            "import os, subprocess, sys; os.setsid(); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{token}'])"
        )

        def test_escapes(llmsup_no_leaks):
            subprocess.run([sys.executable, "-c", CODE], check=True)
        """
    )
    try:
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        (pid,) = live_processes_with(token)
        result.stdout.fnmatch_lines([f"*pid {pid} (parent *):*{token}*"])
    finally:
        _kill_all(token)


def test_a_test_that_leaves_a_descriptor_open_fails_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        KEPT = []

        def test_leaks_fd(llmsup_no_leaks, tmp_path):
            KEPT.append(open(tmp_path / "left-open.txt", "w"))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*file descriptors*at the start; opened and not closed:*", "*fd * -> *left-open.txt*"]
    )


def test_a_clean_supervised_test_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import subprocess, sys
        import pytest
        import actors
        from supervisor import open_supervisor

        @pytest.mark.trio
        async def test_clean(llmsup_no_leaks):
            async with open_supervisor(actors.fake({"chunks": 2})) as sup:
                assert (await sup.ask("hi")).text == "echo: hi"
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_given_test_is_checked_once_at_its_end(pytester: pytest.Pytester) -> None:
    token = marker()
    pytester.makepyfile(
        f"""
        import subprocess, sys
        import pytest
        from hypothesis import given, settings, strategies as st

        RUNS = []

        @pytest.mark.usefixtures("llmsup_no_leaks")
        @settings(max_examples=10, database=None)
        @given(n=st.integers(0, 100))
        def test_clean(n):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            RUNS.append(n)

        @pytest.mark.usefixtures("llmsup_no_leaks")
        @settings(max_examples=10, database=None)
        @given(n=st.integers(0, 100))
        def test_leaks_in_one_example(n):
            if n == 0:
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{token}"])

        def test_ran_every_example():
            assert len(RUNS) == 10
        """
    )
    try:
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=2, failed=1)
        # The leaking example ran once: Hypothesis' own re-runs do not start another process.
        result.stdout.fnmatch_lines(["*FAILED*test_leaks_in_one_example*"])
        assert len(live_processes_with(token)) >= 1
        # Checked once, at the end: its failure section reports it once (the short summary
        # at the bottom may repeat the message, depending on the terminal width).
        failures = result.stdout.str().split("short test summary info")[0]
        assert failures.count("started by the test still run") == 1
    finally:
        _kill_all(token)


def test_the_seed_option_sets_the_fixture_and_failures_print_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_seed(llmsup_seed):
            assert llmsup_seed == 1234

        def test_fails(llmsup_seed):
            assert False, "boom"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--llmsup-seed", "1234")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "llmsup: simulated-backend seed 1234 (replay: --llmsup-seed 1234)",
            "*simulated-backend seed 1234; replay with: pytest --llmsup-seed 1234*",
        ]
    )


def test_without_the_option_the_seed_is_drawn_and_shown_for_the_replay(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        SEEN = []

        def test_one(llmsup_seed):
            SEEN.append(llmsup_seed)

        def test_same_for_the_session(llmsup_seed):
            assert SEEN == [llmsup_seed]
            assert False, f"seed={llmsup_seed}"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    seed = text.split("AssertionError: seed=")[1].split()[0]
    assert f"llmsup: simulated-backend seed {seed} (replay: --llmsup-seed {seed})" in text
    assert f"replay with: pytest --llmsup-seed {seed}" in text


def test_the_emulator_fixture_skips_with_one_line_when_the_cli_is_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    monkeypatch.delenv("LLMSUP_CLI_DIR", raising=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llmsup_cli("gemini")
        def test_needs_gemini(llmsup_emulator):
            raise AssertionError("not reached")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * real gemini not installed (looked on PATH*"])


@pytest.mark.skipif(not (CLI_DIR / "claude").exists(), reason="real claude not installed")
def test_the_emulator_fixture_serves_and_takes_rules_from_a_trio_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSUP_CLI_DIR", str(CLI_DIR))
    pytester.makepyfile(
        """
        import os
        import httpx
        import pytest
        import actors

        @pytest.mark.trio
        async def test_serves(llmsup_emulator):
            assert llmsup_emulator.cli == "claude"
            assert llmsup_emulator.base_url.startswith("http://127.0.0.1:")
            env_a = llmsup_emulator.cli_environment()
            env_b = llmsup_emulator.cli_environment()
            assert env_a["HOME"] != env_b["HOME"] and os.path.isdir(env_a["HOME"])
            assert env_a["ANTHROPIC_BASE_URL"] == llmsup_emulator.base_url
            llmsup_emulator.set_rules(
                [actors.EmulatorRule(match="x", fault=actors.Fault(kind="status", status=429))]
            )
            async with httpx.AsyncClient() as client:
                reply = await client.post(
                    llmsup_emulator.base_url + "/v1/messages",
                    json={
                        "model": "m",
                        "max_tokens": 5,
                        "messages": [{"role": "user", "content": "x"}],
                    },
                )
            assert reply.status_code == 429
            assert [r.prompt for r in llmsup_emulator.requests()] == ["x"]
            assert isinstance(llmsup_emulator.spec(), actors.CliSpec)
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_supervisor_imports_without_hypothesis() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import supervisor, actors, supervisor._testing._plugin\n"
        "try:\n    import supervisor.testing\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "pip install 'llm-cli-supervisor[testing]'" in out

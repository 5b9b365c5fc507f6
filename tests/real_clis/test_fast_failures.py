"""The real binaries fail fast: pointed at a closed port, each CLI gives a typed, explained
failure quickly and leaves no process behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

import actors
from actors import ErrorCategory, LLMError
from actors._clis._discovery import CLI_DIR_ENV
from supervisor import RetryConfig, TimeoutConfig, open_supervisor

from ..helpers import live_processes_with, marker, wait_until_gone

REPO = Path(__file__).resolve().parents[2]
CLI_DIR = Path(os.environ.get(CLI_DIR_ENV) or REPO / ".clis" / "node_modules" / ".bin")
NOT_INSTALLED = "real CLIs not installed: run .ci/install-clis.sh (needs npm)"
ONE_ATTEMPT = RetryConfig(max_attempts=1)


CLOSED = "http://127.0.0.1:9"


def _installed(name: str) -> bool:
    path = CLI_DIR / name
    return path.is_file() and os.access(path, os.X_OK)


def _real(name: str) -> str:
    return str(CLI_DIR / name)


def needs(name: str) -> pytest.MarkDecorator:
    """Skip (with the one-line install hint) unless ``$LLMSUP_CLI_DIR/<name>`` exists.

    A marker, not ``pytest.skip()`` in the test: a skip raised inside a trio test loses
    its reason.
    """
    return pytest.mark.skipif(not _installed(name), reason=NOT_INSTALLED)


# Seconds each CLI takes to fail here, rounded up from `python bench/fast_failures.py`
# (claude 0.7, codex 0.4, gemini 2.0 on the 2-core CI machine). The tests do not time the
# failure: ten times this figure is a guard against a hang (a CLI retrying on its own for
# minutes), not a speed check, which belongs to the bench.
MEASURED_FAILURE_S = {"claude": 1.0, "codex": 1.0, "gemini": 2.0}


def hang_guard_s(name: str) -> float:
    """Ten times the measured time to fail: far from any load, far below minutes of retries."""
    return 10 * MEASURED_FAILURE_S[name]


async def _fails_fast(spec: actors.CliSpec, token: str, needle: str) -> LLMError:
    async with open_supervisor(
        spec, retry=ONE_ATTEMPT, timeouts=TimeoutConfig(total_execution=60.0)
    ) as sup:
        with trio.fail_after(hang_guard_s(spec.name)), pytest.raises(LLMError) as info:
            await sup.ask("--help")  # a prompt that would print help if it were a flag
    error = info.value
    assert error.category is ErrorCategory.RETRYABLE, error
    assert needle.lower() in (error.message + error.stderr).lower(), error
    assert await wait_until_gone(token, 5.0) == []
    return error


@needs("claude")
async def test_real_claude_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    token = marker()
    spec = actors.claude(
        _real("claude"),
        append_system_prompt=token,  # only to find its processes in /proc
        env={"HOME": str(tmp_path), "ANTHROPIC_BASE_URL": CLOSED, "ANTHROPIC_API_KEY": "sk-test"},
        cwd=str(tmp_path),
    )
    error = await _fails_fast(spec, token, "Unable to connect")
    assert error.exit_code == 1  # retries off: the CLI gave up at once by itself
    assert not live_processes_with(token)


@needs("claude")
async def test_real_claude_with_its_own_retries_on_is_stopped_at_the_first(
    tmp_path: Path,
) -> None:
    token = marker()
    env = {
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": CLOSED,
        "ANTHROPIC_API_KEY": "sk-test",
        "CLAUDE_CODE_MAX_RETRIES": "10",  # the CLI would retry for minutes
    }
    spec = actors.claude(_real("claude"), append_system_prompt=token, env=env, cwd=str(tmp_path))
    error = await _fails_fast(spec, token, "would retry on its own")
    assert error.exit_code is None and error.event is not None
    assert error.event["subtype"] == "api_retry"


@needs("codex")
async def test_real_codex_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    token = marker()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-test"\nmodel_provider = "local"\n'
        "[model_providers.local]\n"
        'name = "local"\n'
        f'base_url = "{CLOSED}/v1"\n'
        'env_key = "LLMSUP_TEST_KEY"\n'
        'wire_api = "responses"\n'
        "supports_websockets = false\n"
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    workdir = tmp_path / token  # --cd=... puts the marker in argv
    workdir.mkdir()
    env = {"HOME": str(home), "CODEX_HOME": str(home), "LLMSUP_TEST_KEY": "x"}
    spec = actors.codex(_real("codex"), env=env, cwd=str(workdir))
    assert "--config=model_providers.local.request_max_retries=0" in spec.argv
    # Even with retries 0, codex waits for the network forever; its "Reconnecting..."
    # report stops it.
    error = await _fails_fast(spec, token, "Connection failed")
    assert error.exit_code is None and "stopped early" in error.message


@needs("gemini")
async def test_real_gemini_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    token = marker()
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text(
        '{"security":{"auth":{"selectedType":"gemini-api-key"}}}'
    )
    workdir = tmp_path / token
    workdir.mkdir()
    env = {
        "HOME": str(tmp_path),
        "GOOGLE_GEMINI_BASE_URL": CLOSED,
        "GEMINI_API_KEY": "test-key",
        "TMPDIR": str(tmp_path),  # gemini writes error reports to the temp dir
    }
    spec = actors.gemini(
        _real("gemini"),
        env=env,
        cwd=str(workdir),
        extra_args=[f"--include-directories={workdir}"],  # the marker, in argv
    )
    # gemini would retry a refused connection for minutes; its stderr report stops it.
    error = await _fails_fast(spec, token, "fetch failed")
    assert error.exit_code is None and "Attempt 1 failed" in error.message


@needs("gemini")
async def test_real_gemini_untrusted_folder_is_permanent_with_the_hint(tmp_path: Path) -> None:
    token = marker()
    workdir = tmp_path / token
    workdir.mkdir()
    env = {"HOME": str(tmp_path), "GEMINI_API_KEY": "k", "GEMINI_CLI_TRUST_WORKSPACE": "false"}
    spec = actors.gemini(
        _real("gemini"), env=env, cwd=str(workdir), extra_args=[f"--include-directories={workdir}"]
    )
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=3)) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.PERMANENT
    assert info.value.exit_code == 55 and info.value.attempts == 1
    assert "GEMINI_CLI_TRUST_WORKSPACE=true" in info.value.message
    assert await wait_until_gone(token, 5.0) == []

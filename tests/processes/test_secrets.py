"""Secrets a CLI inherits from this process's environment never reach an error or a log."""

from __future__ import annotations

import json
import logging

import pytest

from actors import LLMError
from supervisor import RetryConfig, open_supervisor

from ..helpers import python_cli

# Prints its whole environment to stderr (and one variable into the last line), then fails:
# what a confused CLI does when it cannot authenticate.
PRINT_ENV_AND_FAIL = (
    "import os, sys\n"
    "for k, v in sorted(os.environ.items()): print(f'{k}={v}', file=sys.stderr)\n"
    "print('auth failed with ' + os.environ['MY_SERVICE_TOKEN'], file=sys.stderr)\n"
    "sys.exit(3)\n"
)
SERVICE_TOKEN = "hunter2-hunter2-hunter2"
ODD_KEY = "weird.shape~key~not-sk-ant"  # no known key shape: only its name gives it away
SHORT = "abc123"  # below the minimum length: left alone so it cannot shred text


async def test_inherited_secrets_are_redacted_everywhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", SERVICE_TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ODD_KEY)
    monkeypatch.setenv("AUTHORIZATION_HEADER_VALUE", "opaque-value-0000")
    monkeypatch.setenv("SHORT_KEY", SHORT)
    caplog.set_level(logging.WARNING, logger="llmsup")
    spec = python_cli(PRINT_ENV_AND_FAIL)
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hello")
    error = info.value
    assert "MY_SERVICE_TOKEN=" in error.stderr  # the CLI did print its environment
    surfaces = {
        "message": error.message,
        "stderr": error.stderr,
        "str": str(error),
        "to_dict": json.dumps(error.to_dict()),
        "log": caplog.text,
    }
    assert any("call failed" in r.getMessage() for r in caplog.records)
    for where, text in surfaces.items():
        for secret in (SERVICE_TOKEN, ODD_KEY, "opaque-value-0000"):
            assert secret not in text, f"{secret!r} leaked into {where}"
    assert f"SHORT_KEY={SHORT}" in error.stderr

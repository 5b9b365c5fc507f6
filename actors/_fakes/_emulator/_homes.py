"""Scratch homes and environments that point the real CLIs at the emulator.

Every CLI keeps state (sessions, settings, caches) under ``$HOME``; giving each run its own
scratch home keeps the user's real configuration out of it and makes runs reproducible.
`cli_environment` prepares that home and returns the variables a child process needs.

What each CLI gets (all observed with claude 2.1.197, codex 0.169.0, gemini 0.61.0):

======  ==========================================================================================
claude  ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY``; ``ANTHROPIC_MODEL`` when a model is given;
        ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (without it claude looks up
        api.anthropic.com on every run) and ``DISABLE_AUTOUPDATER=1``.
codex   ``CODEX_HOME=<home>/.codex`` holding a ``config.toml`` with an ``emulator`` model provider
        (``base_url=<base_url>/v1``, ``wire_api="responses"``, no websockets, no retries of its
        own), ``[analytics] enabled=false`` (else it contacts ab.chatgpt.com) and
        ``[features] plugins=false`` (else chatgpt.com and api.github.com); the key travels in
        ``LLMSUP_EMULATOR_API_KEY``. ``OPENAI_BASE_URL`` does *not* redirect codex.
gemini  ``GOOGLE_GEMINI_BASE_URL``, ``GEMINI_API_KEY``, ``GEMINI_CLI_TRUST_WORKSPACE=true`` (else
        exit 55), ``GEMINI_CLI_NO_RELAUNCH=true`` (skips re-spawning node with a larger heap:
        a call takes ~1 s instead of ~2 s) and ``<home>/.gemini/settings.json`` selecting API-key
        auth (else exit 41), the model (so the ``auto`` router is never asked) and no usage
        statistics (else it contacts play.googleapis.com).
======  ==========================================================================================

All of them also get ``HOME``, the XDG base directories and ``TMPDIR`` inside it (gemini writes
its error reports to the temporary folder), and ``NO_UPDATE_NOTIFIER=1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

CliName = Literal["claude", "codex", "gemini"]

DEFAULT_MODELS: dict[CliName, str | None] = {
    "claude": None,  # claude's own default model name is fine
    "codex": "gpt-emulated",
    "gemini": "gemini-2.5-flash",
}

CODEX_KEY_VARIABLE = "LLMSUP_EMULATOR_API_KEY"

# Inherited variables that would send a CLI elsewhere or change how it authenticates.
CONFLICTING_VARIABLES: frozenset[str] = frozenset(
    {
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BEDROCK_BASE_URL",
        "ANTHROPIC_VERTEX_BASE_URL",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "CLAUDE_CODE_USE_FOUNDRY",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "CODEX_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_GCA",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    }
)


def ensure_scratch_home(home: str | os.PathLike[str]) -> Path:
    """Create `home` (and its parents) if needed; return it as an absolute path."""
    path = Path(home).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON string escaping is valid TOML for these characters)."""
    return json.dumps(value, ensure_ascii=False)


def write_codex_config(codex_home: Path, base_url: str, model: str) -> Path:
    """(Re)write ``codex_home/config.toml`` for the emulator; returns its path."""
    codex_home.mkdir(parents=True, exist_ok=True)
    config = codex_home / "config.toml"
    config.write_text(
        "# Written by llm-cli-supervisor's cli_environment: talk to the provider emulator.\n"
        f"model = {_toml_string(model)}\n"
        'model_provider = "emulator"\n'
        "check_for_update_on_startup = false\n"
        "\n"
        "[analytics]\n"
        "enabled = false\n"
        "\n"
        "[features]\n"
        "plugins = false\n"
        "\n"
        "[model_providers.emulator]\n"
        'name = "llmsup emulator"\n'
        f"base_url = {_toml_string(base_url.rstrip('/') + '/v1')}\n"
        f"env_key = {_toml_string(CODEX_KEY_VARIABLE)}\n"
        'wire_api = "responses"\n'
        "supports_websockets = false\n"
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n",
        encoding="utf-8",
    )
    return config


def write_gemini_settings(home: Path, model: str) -> Path:
    """Merge the emulator's keys into ``home/.gemini/settings.json``; returns its path."""
    folder = home / ".gemini"
    folder.mkdir(parents=True, exist_ok=True)
    settings_path = folder / "settings.json"
    settings: dict[str, object] = {}
    if settings_path.exists():
        try:
            loaded = json.loads(settings_path.read_text(encoding="utf-8"))
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            settings = loaded
    ours: dict[str, dict[str, object]] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "model": {"name": model},
    }
    for section, values in ours.items():
        current = settings.get(section)
        settings[section] = {**(current if isinstance(current, dict) else {}), **values}
    settings_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return settings_path


def cli_environment(
    cli: CliName,
    base_url: str,
    home: str | os.PathLike[str],
    *,
    model: str | None = None,
    api_key: str = "emulator-key",
    inherit: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Prepare the scratch `home` for `cli` and return the environment to run it with.

    `base_url` is the emulator's (``Emulator.base_url``), without ``/v1``. `model` defaults to
    `DEFAULT_MODELS`. Without `inherit` the result holds only the variables to set: merge
    it over a minimal environment (at least ``PATH``). With `inherit` (e.g. ``os.environ``),
    the result is that environment minus `CONFLICTING_VARIABLES`, plus ours.

    Calling it again on the same home refreshes the files (a new port, a new model) and keeps
    the CLI's stored sessions, so ``--resume`` keeps working.
    """
    root = ensure_scratch_home(home)
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    base_url = base_url.rstrip("/")
    env: dict[str, str] = {
        "HOME": str(root),
        "XDG_CONFIG_HOME": str(root / ".config"),
        "XDG_CACHE_HOME": str(root / ".cache"),
        "XDG_DATA_HOME": str(root / ".local" / "share"),
        "XDG_STATE_HOME": str(root / ".local" / "state"),
        "TMPDIR": str(tmp),
        "NO_UPDATE_NOTIFIER": "1",
    }
    env |= _cli_variables(cli, root, base_url, model or DEFAULT_MODELS[cli], api_key)
    if inherit is None:
        return env
    kept = {k: v for k, v in inherit.items() if k not in CONFLICTING_VARIABLES}
    return kept | env


def _cli_variables(
    cli: CliName, root: Path, base_url: str, model: str | None, api_key: str
) -> dict[str, str]:
    """The variables (and files under ``root``) that point ``cli`` at the emulator."""
    if cli == "claude":
        env = {
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        return env | ({"ANTHROPIC_MODEL": model} if model else {})
    if cli == "codex":
        assert model is not None
        codex_home = root / ".codex"
        write_codex_config(codex_home, base_url, model)
        return {"CODEX_HOME": str(codex_home), CODEX_KEY_VARIABLE: api_key}
    if cli == "gemini":
        assert model is not None
        write_gemini_settings(root, model)
        return {
            "GOOGLE_GEMINI_BASE_URL": base_url,
            "GEMINI_API_KEY": api_key,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
    raise ValueError(f"unknown cli {cli!r}: expected claude, codex or gemini")

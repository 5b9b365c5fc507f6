"""Which environment values count as secrets a CLI received (inherited or given)."""

from __future__ import annotations

import pytest

from actors._redact import MIN_INHERITED_SECRET, child_secrets


def test_inherited_secret_names_count_with_a_minimum_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "t" * MIN_INHERITED_SECRET)
    monkeypatch.setenv("auth_cookie", "c" * 12)  # AUTH* prefix, any case
    monkeypatch.setenv("Db_Password", "p" * 9)
    monkeypatch.setenv("SHORT_SECRET", "s" * (MIN_INHERITED_SECRET - 1))
    monkeypatch.setenv("OAUTH_NOT_A_PREFIX", "o" * 20)  # AUTH only as a prefix
    monkeypatch.setenv("HOME_DIRECTORY", "/home/someone/elsewhere")
    found = child_secrets({}, inherit=True)
    assert {"t" * MIN_INHERITED_SECRET, "c" * 12, "p" * 9} <= set(found)
    assert "s" * (MIN_INHERITED_SECRET - 1) not in found
    assert "o" * 20 not in found
    assert "/home/someone/elsewhere" not in found


def test_spec_env_wins_and_no_inheritance_means_no_inherited_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "inherited-value-1")
    given = {"MY_SERVICE_TOKEN": "given-value-22"}
    assert child_secrets(given, inherit=True).count("inherited-value-1") == 0
    assert "given-value-22" in child_secrets(given, inherit=True)
    assert "inherited-value-1" not in child_secrets({}, inherit=False)


def test_longest_secret_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_TOKEN", "abcdefgh")
    monkeypatch.setenv("B_TOKEN", "abcdefgh-and-more")
    found = child_secrets({}, inherit=True)
    assert found.index("abcdefgh-and-more") < found.index("abcdefgh")

"""Secrets never reach a log, an error or a user: `redact` and `LLMError` construction."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ErrorCategory, LLMError
from actors._redact import REDACTED, redact, secret_values_from_env

ANTHROPIC_KEY = "sk-ant-api03-" + "Ab1_" * 20
OPENAI_KEY = "sk-proj-" + "Zx9-" * 12
OPENAI_LEGACY_KEY = "sk-" + "a1B2c3D4e5" * 5
GOOGLE_KEY = "AIzaSyD" + "x7_Y" * 8
GITHUB_TOKENS = ["ghp_" + "A1b2" * 9, "gho_" + "Q" * 36, "ghs_" + "9" * 30]
SLACK_TOKEN = "xoxb-1234567890-abcdefghij"


@pytest.mark.parametrize(
    "key",
    [ANTHROPIC_KEY, OPENAI_KEY, OPENAI_LEGACY_KEY, GOOGLE_KEY, *GITHUB_TOKENS, SLACK_TOKEN],
)
def test_known_key_shapes_are_redacted(key: str) -> None:
    text = f"Error: invalid API key {key} (check your settings)"
    out = redact(text)
    assert key not in out
    assert out == f"Error: invalid API key {REDACTED} (check your settings)"


def test_every_key_in_a_text_is_redacted() -> None:
    text = "\n".join([ANTHROPIC_KEY, f"key={OPENAI_KEY}", f"[{GOOGLE_KEY}]", SLACK_TOKEN])
    out = redact(text)
    for key in (ANTHROPIC_KEY, OPENAI_KEY, GOOGLE_KEY, SLACK_TOKEN):
        assert key not in out
    assert out.count(REDACTED) == 4


def test_bearer_token_keeps_the_scheme() -> None:
    out = redact("Authorization: Bearer eyJhbGciOi.J9eyJzdWIi-Oi_JIUzI1NiJ9==; next")
    assert out == f"Authorization: Bearer {REDACTED}; next"
    assert redact("bearer abcdefgh12345") == f"bearer {REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api_key=abcd1234efgh", f"api_key={REDACTED}"),
        ("API-KEY: hunter2hunter2", f"API-KEY: {REDACTED}"),
        ("apikey = 'qwerty12'", f"apikey = '{REDACTED}'"),
        ('{"token": "tok_abc123xyz"}', f'{{"token": "{REDACTED}"}}'),
        ('{"access_token":"ya29.a0AfH6"}', f'{{"access_token":"{REDACTED}"}}'),
        ("password=correct-horse, user=bob", f"password={REDACTED}, user=bob"),
        ("client secret: s3cr3tv4lue", f"client secret: {REDACTED}"),
        ("AUTH_TOKEN=abcd;other=1", f"AUTH_TOKEN={REDACTED};other=1"),
    ],
)
def test_name_value_forms_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "echo: hello world",
        "Error: 401 Unauthorized: invalid API key",
        "the token was rejected",  # the word alone is no secret
        "password: abc",  # too short to be a credential
        "sk-short",
        "Please try again in 20s.",
        '{"type":"result","text":"echo: hi","session_id":"1234-5678"}',
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_extra_secrets_are_replaced_literally() -> None:
    secret = "p@ss.w*rd(1)"  # regex metacharacters must not matter
    text = f"connecting with {secret} to host; again {secret}"
    out = redact(text, [secret, ""])  # an empty secret is ignored, not matched everywhere
    assert secret not in out
    assert out == f"connecting with {REDACTED} to host; again {REDACTED}"
    assert redact("p@ssXw*rd(1)", [secret]) == "p@ssXw*rd(1)"


# Letters minus k/K (sk-, key, token), b/B (bearer) and z/Z (AIza), and no '-', '_', ':' or
# '=': no key shape or name=value form can be spelled with this alphabet.
SAFE_ALPHABET = (
    "".join(c for c in string.ascii_letters if c not in "kKbBzZ")
    + string.digits
    + " .,!?()\n\t'\"/"
)


@settings(max_examples=300)
@given(text=st.text(alphabet=SAFE_ALPHABET, max_size=200))
def test_text_that_cannot_spell_a_secret_is_unchanged(text: str) -> None:
    assert redact(text) == text


KEY_BODY = st.text(alphabet=string.ascii_letters + string.digits, min_size=40, max_size=60)
KEY_PREFIXES = st.sampled_from(["sk-ant-", "sk-", "sk-proj-", "AIza", "ghp_", "ghu_"])


@settings(max_examples=200)
@given(prefix=KEY_PREFIXES, body=KEY_BODY, before=st.text(max_size=40), after=st.text(max_size=40))
def test_keys_are_redacted_wherever_they_appear(
    prefix: str, body: str, before: str, after: str
) -> None:
    key = prefix + body
    out = redact(f"{before} {key} {after}")
    assert key not in out
    assert REDACTED in out


SECRET_CHARS = string.ascii_lowercase + string.digits + "!@#$%^&*().+?|\\"


@settings(max_examples=200)
@given(
    secret=st.text(alphabet=SECRET_CHARS, min_size=6, max_size=30),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
)
def test_extra_secrets_never_survive(secret: str, before: str, after: str) -> None:
    out = redact(before + secret + after, [secret])
    assert secret not in out


def test_secret_values_from_env_picks_secret_names_with_long_values() -> None:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-xyz123456",
        "GITHUB_TOKEN": "ghp_abcdef",
        "db_password": "hunter22",
        "MY_SECRET": "123456",  # exactly 6 characters: kept
        "AWS_CREDENTIALS": "AKIA1234",
        "SHORT_KEY": "abc",  # too short to be worth masking
        "EMPTY_TOKEN": "",
        "HOME": "/home/someone",
        "PATH": "/usr/local/bin:/usr/bin",
        "LANG": "en_US.UTF-8",
        "MODEL": "claude-sonnet-4-5",
    }
    assert sorted(secret_values_from_env(env)) == sorted(
        ["sk-ant-xyz123456", "ghp_abcdef", "hunter22", "123456", "AKIA1234"]
    )
    assert secret_values_from_env({}) == ()


def test_llm_error_redacts_message_and_stderr_at_construction() -> None:
    literal = "corp-internal-credential-42"
    error = LLMError(
        f"claude exited with code 1: invalid API key {ANTHROPIC_KEY}",
        ErrorCategory.AUTH_FAILURE,
        exit_code=1,
        stderr=f"debug: using {literal}\nAuthorization: Bearer abcdefghijklmnop\n",
        cli="claude",
        secrets=[literal],
    )
    shown = [error.message, error.stderr, str(error), repr(error), error.one_line()]
    shown.append(json.dumps(error.to_dict()))
    shown.extend(str(arg) for arg in error.args)
    for text in shown:
        assert ANTHROPIC_KEY not in text
        assert literal not in text
        assert "abcdefghijklmnop" not in text
    assert REDACTED in error.message
    assert error.stderr == f"debug: using {REDACTED}\nAuthorization: Bearer {REDACTED}\n"


def test_llm_error_to_dict_is_json_ready_and_complete() -> None:
    error = LLMError(
        f"rate limited for key {OPENAI_KEY}",
        ErrorCategory.RATE_LIMIT,
        exit_code=1,
        retry_after=3.0,
        cli="codex",
        attempts=2,
    )
    data = json.loads(json.dumps(error.to_dict()))
    assert data == {
        "category": "rate_limit",
        "message": f"rate limited for key {REDACTED}",
        "exit_code": 1,
        "retry_after": 3.0,
        "attempts": 2,
        "cli": "codex",
    }

"""Redaction of secrets from any text that may reach a log, an error or a user.

Errors carry stderr tails and CLI messages; CLIs happily echo keys back ("Invalid API key
sk-..."). Everything user-visible passes through `redact` first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"

# Known key shapes first, then generic "name=value" / "Bearer value" forms.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"sk-(?:proj-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"xox[abpr]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"),
    re.compile(
        r"(?i)((?:api[_\-]?key|access[_\-]?token|auth[_\-]?token|secret|password|token)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]{4,}"
    ),
)

# Environment variable names whose values are secrets.
_SECRET_ENV_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|^AUTH)")
# Shortest value worth masking: a spec's own ``env`` is explicit, so shorter values count;
# an inherited one is a guess from its name, so it must be long enough not to shred text.
_MIN_SPEC_SECRET = 6
MIN_INHERITED_SECRET = 8


def secret_values_from_env(
    env: Mapping[str, str], min_length: int = _MIN_SPEC_SECRET
) -> tuple[str, ...]:
    """Values of variables that look like secrets (long enough to be worth masking)."""
    return tuple(
        value
        for name, value in env.items()
        if len(value) >= min_length and _SECRET_ENV_NAME.search(name)
    )


def child_secrets(env: Mapping[str, str], *, inherit: bool) -> tuple[str, ...]:
    """Every secret-looking value a CLI receives: its spec's ``env`` and, when it inherits
    this process's environment, the inherited variables whose names look secret.

    Called when an error is built (the rare path), never per call: it reads
    ``os.environ`` as it is now, so a variable set after the spec was made is covered
    too. Longest first, so a secret that contains another is replaced whole.
    """
    found = set(secret_values_from_env(env))
    if inherit:
        inherited = {k: v for k, v in os.environ.items() if k not in env}
        found.update(secret_values_from_env(inherited, MIN_INHERITED_SECRET))
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Replace anything that looks like a credential with ``[REDACTED]``."""
    for secret in extra_secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text

"""Exception groups, as trio's nurseries produce them, turned back into the error inside.

Public calls promise to raise `LLMError` (or the caller's own exception) itself. A nursery
wraps even a single error in a group, and adds the `trio.Cancelled` of its other tasks as
noise; `unwrap_group` finds the one meaningful exception, or keeps the group if there are
several.
"""

from __future__ import annotations

import trio


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The single meaningful leaf of ``group`` (cancellations dropped), else ``group``."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    meaningful = [e for e in leaves if not isinstance(e, trio.Cancelled)] or leaves
    return meaningful[0] if len(meaningful) == 1 else group

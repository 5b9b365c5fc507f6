"""Finding a CLI's executable without making the user spell out its path.

Order (first hit wins):

1. an explicit path, returned as is (even if it does not exist, so the spawn error names
   exactly what the user asked for);
2. ``shutil.which(name)``: the ``PATH``;
3. ``$LLMSUP_CLI_DIR/<name>``;
4. ``<dir>/.clis/node_modules/.bin/<name>`` for the current directory and each of its
   parents (what ``.ci/install-clis.sh`` creates in a checkout), then the same folder next
   to the installed package;
5. the bare name: the actor's spawn then fails with a PERMANENT error that names it
   (`cli_search_description` says where we looked).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

CLI_DIR_ENV = "LLMSUP_CLI_DIR"
INSTALL_HINT = "install with .ci/install-clis.sh (needs npm)"
_CLIS_BIN = Path(".clis") / "node_modules" / ".bin"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _project_bin_dirs(start: Path) -> Iterator[Path]:
    """``.clis/node_modules/.bin`` in ``start`` and each parent, then beside the package."""
    for folder in (start, *start.parents):
        if (folder / ".clis").is_dir():
            yield folder / _CLIS_BIN
    yield Path(__file__).resolve().parents[1] / _CLIS_BIN


def find_executable(name: str, explicit: str | os.PathLike[str] | None = None) -> str:
    """The path to run for CLI ``name`` (see the module docstring for the order).

    Never raises: when nothing is found the bare ``name`` comes back, and the spawn fails
    with a PERMANENT error naming it.
    """
    if explicit is not None:
        return os.fspath(explicit)
    found = shutil.which(name)
    if found:
        return found
    cli_dir = os.environ.get(CLI_DIR_ENV)
    if cli_dir:
        candidate = Path(cli_dir) / name
        if _is_executable(candidate):
            return str(candidate)
    try:
        cwd = Path.cwd()
    except OSError:  # the working directory was deleted under us
        cwd = Path("/")
    for folder in _project_bin_dirs(cwd):
        candidate = folder / name
        if _is_executable(candidate):
            return str(candidate)
    return name


def cli_search_description(name: str) -> str:
    """Where `find_executable` looked for ``name``, for a "not found" error message."""
    cli_dir = os.environ.get(CLI_DIR_ENV)
    where_env = f"${CLI_DIR_ENV} ({cli_dir})" if cli_dir else f"${CLI_DIR_ENV} (unset)"
    return (
        f"looked for {name!r} on PATH, in {where_env} and in ./.clis/node_modules/.bin "
        f"(this folder and its parents, and next to the package); {INSTALL_HINT}"
    )

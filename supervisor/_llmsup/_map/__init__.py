"""``llmsup map INPUT -o OUTPUT``: run many prompts, one JSON line out per prompt.

Input
    A JSON-lines file of ``{"id": ..., "prompt": "..."}`` objects (ids are strings or
    integers; blank lines are skipped), or ``--template 'Analyze {path}:\\n{content}' --files
    'src/**/*.py'``: one prompt per matching file (``**`` is recursive), whose id is the path.
    ``{path}`` and ``{content}`` are substituted in one pass (other braces are left alone, so
    JSON examples in a template need no escaping), and the ``\\n``/``\\t`` escapes of a
    template typed on a command line become a newline/tab (``\\\\`` is a backslash).

    The input is read twice: a first pass checks every line and keeps only the set of ids
    (a bad JSON line, a missing, duplicate or non-string/integer id, or a missing or
    non-string prompt is a one-line usage error naming the line, exit status 2, before
    anything runs or any output is written); a second pass streams the prompts lazily into
    `Supervisor.map_stream`, so 100k-line inputs run in bounded memory.

Output
    One JSON line per input, appended (one ``write()`` per line, then flushed) as each item
    finishes, in completion order: ``id``, ``ok``, ``text`` (``data`` instead with
    ``--output-schema``), ``error`` (``{category, message, retry_after}``, null when ok),
    ``attempts`` (across every CLI that was tried), ``cli`` (who answered, or who failed
    last), ``duration_s`` (wall time of the calls, queueing for a process slot included),
    ``usage`` and ``cost`` (USD) when the CLI reported them. An existing non-empty output
    file is refused unless ``--resume`` is given.

``--output-schema``
    ``module:Model`` (a pydantic model; the current directory is importable) or the path of
    a JSON Schema file. A schema file is checked up front (a usage error names what is
    wrong; a ``$ref`` must stay inside the file), shown to the model in the prompt, and
    every answer is validated by it in full with the `jsonschema` library.

``--resume``
    Skips every id already present in the output file, whether it succeeded or failed
    (delete a failed line to run it again); a torn last line (no newline: the previous run
    was killed mid-write, which a single ``write()`` makes unlikely) is cut off first. The
    exit status still counts the failures kept from before.

Ctrl+C / SIGTERM / SIGHUP
    Stops the run: every CLI process tree is ended (the supervisors' stop sequence), no line
    is half-written, items in flight are not written (``--resume`` runs them), exit status
    130 (143 for SIGTERM, 129 for SIGHUP: 128+signal).

Fallbacks
    ``--fallback NAME`` (repeatable) opens one supervisor per CLI for the whole run. An item
    whose call fails with RATE_LIMIT, AUTH_FAILURE or CIRCUIT_OPEN (the CLI's breaker, from
    ``--failure-threshold``, is open) moves on to the next CLI. Every CLI but the last fails
    fast on an open breaker (so items move at once); the last one lets items wait up to
    `LAST_BREAKER_WAIT_S` for its breaker instead of failing them en masse.

Memory
    Concurrency is bounded by ``--concurrency`` and by ``--memory-budget`` (``2G``, ``500M``,
    ...; default: `BUDGET_SHARE` of MemAvailable in /proc/meminfo): each CLI runs at most
    ``budget // estimate`` processes at once (at least one). The estimate starts at a
    per-CLI default (`DEFAULT_ESTIMATES_MIB`) and follows observation: the process trees
    this run spawns are sampled every `SAMPLE_EVERY_S` through /proc (``VmHWM``, the peak
    resident size, summed over each tree); once `TRUSTED_AFTER` processes of a CLI were
    seen, its estimate is the largest observed peak times `OBSERVED_MARGIN`, and the
    process limit is adjusted while the run goes on. Each CLI's limit is computed against
    the whole budget; CLIs that run at the same time (fallbacks) do not split it.

Progress and summary go to stderr: a rich progress bar on a terminal, else a plain line
every `PLAIN_EVERY_S` seconds or 10 %. Exit status: 0 when every item succeeded, 1 when
any failed, 2 for usage errors, 128+signal (130, 143, 129) when interrupted.
"""

from ._command import add_map_arguments as add_map_arguments
from ._command import run_map as run_map

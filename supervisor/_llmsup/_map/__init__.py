"""``llmsup map INPUT -o OUTPUT``: run many prompts, one JSON line out per prompt.

Input
    A JSON-lines file of ``{"id": ..., "prompt": "...", ...}`` objects (blank lines are
    skipped), ``-`` for standard input, or ``--template 'Analyze {path}:\\n{content}'
    --files 'src/**/*.py'``: one prompt per matching file (``**`` is recursive), whose id
    is the path. ``{path}`` and ``{content}`` are substituted in one pass (other braces are
    left alone, so JSON examples in a template need no escaping), and the ``\\n``/``\\t``
    escapes of a template typed on a command line become a newline/tab (``\\\\`` is a
    backslash).

    Ids are strings or integers, and an integer id is the same id as its decimal digits
    as a string: ``1`` and ``"1"`` are one id (twice in the input is a duplicate;
    ``--resume`` takes an output line ``{"id": 1}`` for the input's ``"1"``), while
    ``"01"`` is another. A line is written with the id as its input line has it.

    The input is read twice: a first pass checks every line and keeps only the set of ids
    (a bad JSON line, a missing, duplicate or non-string/integer id, a missing,
    non-string, empty or whitespace-only prompt, or other fields nested deeper than
    `MAX_INPUT_DEPTH` is a one-line usage error naming the line, exit status 2, before
    anything runs or any output is written); a second pass streams the prompts lazily into
    `Supervisor.map_stream`, so 100k-line inputs run in bounded memory. Standard input is
    first copied to a private temporary file (mode 0600, in ``$TMPDIR``), removed when the
    run ends, so that it too is read twice in bounded memory.

Output
    One JSON line per input, appended (one ``write()`` per line, then flushed) as each item
    finishes, in completion order: ``id``, ``ok``, ``text`` (``data`` instead with
    ``--output-schema``), ``error`` (``{category, message, retry_after}``, null when ok),
    ``attempts`` (across every CLI that was tried), ``cli`` (who answered, or who failed
    last), ``duration_s`` (wall time of the calls, queueing for a process slot included),
    ``usage`` and ``cost`` (USD, as the CLI reported it: see Cost) when the CLI reported
    them. ``-o -`` writes the lines to standard output (progress and summary stay on
    stderr); a reader that goes away (``| head``) stops the run, exit status 1. An
    existing non-empty output file is refused unless ``--resume`` or ``--retry-failed`` is
    given.

    The input line's other fields (all but ``id`` and ``prompt``, which is not repeated)
    come back in its output line, at the top level, after the output's own fields. A field
    named like one of the output's own (`RESERVED_FIELDS`: the ones above, ``node`` for
    ``--ray``, and ``input``) goes under ``"input": {...}`` instead, so that
    ``{"id": 1, "prompt": "p", "text": "doc", "lang": "fr"}`` comes back as
    ``{"id": 1, "ok": true, "text": "echo: p", ..., "lang": "fr", "input": {"text": "doc"}}``.

``--output-schema``
    ``module:Model`` (a pydantic model; the current directory is importable) or the path of
    a JSON Schema file. A schema file is checked up front (a usage error names what is
    wrong; a ``$ref`` must stay inside the file), shown to the model in the prompt, and
    every answer is validated by it in full with the `jsonschema` library.

``--resume``
    Skips every id already present in the output file, whether it succeeded or failed;
    a torn last line (no newline: the previous run was killed mid-write, which a single
    ``write()`` makes unlikely) is cut off first. The exit status still counts the
    failures kept from before. Not with ``-o -`` (a usage error: nothing to resume from).

``--retry-failed``
    As ``--resume``, and the ids whose line says anything but ``"ok": true`` run again;
    their new lines replace the old ones, so the output stays one line per id. The old
    file is never changed in place: a new file in the same folder
    (``.OUTPUT.XXXX.partial``) gets the lines kept, then this run's lines as they finish,
    and when the run ends (finished, Ctrl+C, or an error) the old lines of the items that
    did not finish, then it is renamed over OUTPUT (``os.replace``): the rename is the
    commit. So after Ctrl+C every item that finished has its new line (ok or failed
    again) and the rest keep their old ones; after SIGKILL, OUTPUT is as it was (the
    ``.partial`` file is left behind). Lines of ids not in the input are kept. Not with
    ``-o -``.

Cost
    ``cost`` is `Result.cost_usd`, the figure the CLI printed, unchanged; the summary sums
    it and says so ("cost $X as reported by the CLI for N of M items"). It is the CLI's
    own estimate, not a bill: claude prices the token counts it got back with its own
    price list for the model (against ``llmsup emulate``, those counts are the emulator's
    estimates, about four characters a token over the whole request, so echo calls show
    real-looking dollars); codex and gemini report none (null); the fake CLI reports 0.

``--standby N``
    Each CLI's supervisor keeps N processes started and waiting for their prompt
    (``open_supervisor(standby=N)``), so calls do not pay the CLI's start-up. Only for CLIs
    that read the prompt from stdin (claude, codex, gemini; ``--prompt-via stdin`` for the
    fake CLI and ``--command``): a CLI of the chain that cannot runs without, and a chain
    where none can is a usage error. Standby processes count against the memory budget
    (`Supervisor.set_process_limit`: calls' and standby processes together stay within
    ``budget // estimate``), not against ``--concurrency``. The summary counts the calls
    that took one.

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
    ``budget // estimate`` processes at once (at least one), standby ones included. The
    estimate starts at a per-CLI default (`DEFAULT_ESTIMATES_MIB`) and follows observation:
    the process trees this run spawns are sampled every `SAMPLE_EVERY_S` through /proc
    (``VmHWM``, the peak resident size, summed over each tree); once `TRUSTED_AFTER`
    processes of a CLI have ended (a live one, such as a standby process waiting for its
    prompt, may not have reached its peak), its estimate is the largest observed peak times
    `OBSERVED_MARGIN`, and the process limit is adjusted while the run goes on. Each CLI's
    limit is computed against the whole budget; CLIs that run at the same time (fallbacks)
    do not split it.

Progress and summary go to stderr: a rich progress bar on a terminal, else a plain line
every `PLAIN_EVERY_S` seconds or 10 %. Exit status: 0 when every item succeeded, 1 when
any failed (or stdout's reader went away), 2 for usage errors, 128+signal (130, 143, 129)
when interrupted.
"""

from ._command import add_map_arguments as add_map_arguments
from ._command import run_map as run_map

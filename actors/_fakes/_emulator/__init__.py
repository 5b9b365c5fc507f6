"""Provider emulator: fake Anthropic, OpenAI and Gemini APIs for the REAL CLIs, offline.

A loopback HTTP server that speaks enough of three provider APIs for the real ``claude``,
``codex`` and ``gemini`` binaries to run end to end without an account or a network: replies,
token-level streaming, errors in each provider's shape, and faults (rate limits, stalls, broken
streams). Use it to test a pipeline against the real CLIs, and to see what each CLI prints
when its API misbehaves. Verified with claude 2.1.197, codex 0.169.0 and gemini 0.61.0.

Starting it
===========

From a shell (runs until Ctrl+C or SIGTERM, then exits 0; SIGHUP reloads the rules file)::

    llmsup emulate [--host 127.0.0.1] [--port 8765] [--rules rules.json] [--log requests.jsonl]
    # prints: emulating anthropic, openai and gemini APIs on http://127.0.0.1:8765

``--port 0`` picks a free port (read it from that first line). From trio code::

    rules = [EmulatorRule(match="boom", fault=Fault(kind="status", status=429))]
    async with open_emulator(rules) as emu:
        env = cli_environment("claude", emu.base_url, tmp_path / "home", inherit=os.environ)
        ...run claude with env...
        assert emu.generation_requests()[-1].prompt == "..."

`open_emulator` serves on 127.0.0.1 and a free port by default (``emu.port``, ``emu.base_url``),
serves many connections at once, and on exit closes every connection (releasing stalled ones)
before it returns. ``emu.set_rules(...)`` swaps the rules at any time; ``emu.requests`` is the
request log, ``emu.clear_requests()`` empties it and ``await emu.wait_requests(n)`` waits for it.

Rules and faults
================

The first rule that applies to a request answers it; with no applicable rule the emulator
echoes (``"echo: {prompt}"``). The prompt is the latest user message's text without the
context blocks the CLIs add (``<system-reminder>``, ``<environment_context>``,
``<session_context>``, ...). A rules file holds a JSON list (or ``{"rules": [...]}``);
``llmsup emulate --help`` describes it too::

    [
      {"match": "boom", "fault": {"kind": "status", "status": 429, "retry_after": 20}, "times": 2},
      {"provider": "gemini", "match": "slow", "reply": "taking my time", "chunks": 5,
       "fault": {"kind": "slow", "chunk_delay_s": 0.5}},
      {"match": "hang", "fault": {"kind": "stall", "stall_after_chunks": 1}, "chunks": 3},
      {"match": "cut", "fault": {"kind": "disconnect", "disconnect_after_chunks": 2}, "chunks": 4},
      {"match": "junk", "fault": {"kind": "malformed"}},
      {"match": "peek", "reply": "read it", "fault": {"kind": "tool_call", "tool_name": "Read",
       "tool_input": {"file_path": "/etc/hostname"}}},
      {"match": "judge", "reply": "{\\"score\\": 1}", "structured": "prose", "times": 1},
      {"reply": "Hello! You said: {prompt}", "chunks": 3}
    ]

Rule fields: ``match`` (substring of the prompt), ``provider`` (``anthropic``, ``openai``,
``gemini``), ``times`` (applies to the first N matching requests, then is skipped), ``reply``
(``{prompt}`` is substituted), ``chunks`` (number of text deltas), ``fault``. Fault kinds:
``status`` (``status``, optional ``retry_after`` seconds sent as a ``retry-after`` header and as
"Please try again in Ns." in the message, optional ``message``, and ``gemini_retry_info`` to add
Google's RetryInfo detail), ``slow`` (``chunk_delay_s`` before each chunk), ``stall`` (send
``stall_after_chunks`` chunks, then nothing, connection kept open), ``disconnect`` (close after
``disconnect_after_chunks`` chunks), ``malformed`` (undecodable JSON in the stream or body),
``tool_call`` (``tool_name``, optional ``tool_input`` object: the model asks for that tool; see
below). A field that does not belong to its kind, an unknown field or a bad value is an error
naming it, e.g. ``rules.json: 0.fault.status: Input should be less than or equal to 599``.
Rules apply to generation calls only; token counts and model lists are always answered.

Tools
=====

=================  ============================================================================
tool call          ``Fault(kind="tool_call", tool_name="Read", tool_input={...})``, on a request
                   whose latest turn is a prompt: Anthropic ``content_block_start`` with a
                   ``tool_use`` block, one ``input_json_delta`` per chunk of the input's JSON,
                   ``stop_reason: "tool_use"``; OpenAI an output item ``function_call``
                   (``call_id``, ``name``, ``arguments`` as a JSON string, streamed as
                   ``response.function_call_arguments.delta``); Gemini one part
                   ``{"functionCall": {"name", "args"}}``. Non-streamed replies carry the same.
tool result        a request whose conversation ends with a tool result (Anthropic user
                   ``tool_result`` block, OpenAI ``function_call_output`` item, Gemini
                   ``functionResponse`` part) gets the rule's reply as text; the rule is still
                   matched on the prompt that started the turn. A new prompt after it is a
                   fresh turn (the tool is asked for again, unless ``times`` ran out).
StructuredOutput   when the request offers a tool named ``StructuredOutput`` (claude with
                   ``--json-schema``) and the rule's rendered reply is a JSON object, the model
                   calls that tool with the object as input (claude prints it in its
                   ``result``); the request carrying that call's result gets ``Done.``.
                   ``EmulatorRule(structured="prose")`` (default ``"tool"``) answers the text
                   instead; claude then re-asks with a ``[structured-output-enforce]`` user
                   message, which is never taken as the prompt (nor echoed).
=================  ============================================================================

Verified with the real binaries (tests/real_clis/test_emulator_tools.py): claude runs ``Read``,
codex ``exec_command`` (``{"cmd": ...}``), gemini ``read_file`` (``{"file_path": ...}``), and
each sends the tool's output back in its next request.

Endpoints: ``POST .../v1/messages`` and ``.../v1/messages/count_tokens`` (Anthropic),
``POST .../v1/responses`` and ``GET .../v1/models`` (OpenAI),
``POST .../models/MODEL:streamGenerateContent|generateContent|countTokens`` (Gemini), matched on
the path suffix so base URLs with a path prefix work; ``HEAD`` on any path is 200; anything else
is 404. Every request, answered or not, is logged.

The request log
===============

Each request becomes a `RecordedRequest`: time, provider, method, path, query, headers (the
values of ``authorization``, ``x-api-key`` and ``x-goog-api-key``, and ``key=`` in the query,
replaced by ``[REDACTED]``), the JSON body, ``model``, ``stream``, ``prompt``, ``messages`` (every
message's role and text, system first: a resumed session's request shows the earlier turns),
``rule_index``, ``fault``, ``status``, ``texts`` (the text chunks answered), ``tools`` (names
of the tools offered: Anthropic and OpenAI ``tools[].name``, OpenAI ``function.name`` and
namespaces' nested tools, else the tool's ``type`` such as ``web_search``; Gemini
``tools[].functionDeclarations[].name``), ``system`` (Anthropic ``system``, OpenAI
``instructions``, Gemini ``systemInstruction`` text; "" if none), ``tool_results`` (the text of
each tool result carried, oldest first), ``body_bytes`` (the raw body's length) and
``tool_call`` (the tool the answer asked for, None for text). With ``log_path`` / ``--log``
each is also appended to the file as one JSON line.

Pointing each CLI at it
=======================

``cli_environment(cli, base_url, home)`` prepares a scratch home and returns the environment
(see `actors._fakes._emulator._homes` for every variable and why). Then run, with stdin closed:

======  =====================================================================================
claude  ``claude -p PROMPT --output-format stream-json --verbose`` (add
        ``--include-partial-messages`` for one ``stream_event`` per text delta); set
        ``CLAUDE_CODE_MAX_RETRIES=0`` to turn its own retries off
codex   ``codex exec --json --skip-git-repo-check PROMPT`` (stdin must be closed or /dev/null;
        it prints one ``item.completed`` agent_message, no deltas, and always a harmless
        ``item.completed`` of type error "Model metadata for `gpt-emulated` not found")
gemini  ``gemini -p PROMPT --output-format stream-json`` (model from settings, or ``-m``; one
        assistant ``message`` with ``delta: true`` per chunk)
======  =====================================================================================

Resuming a session in a new process (same home, same working directory), all verified:

- claude: ``claude -p PROMPT --resume SESSION_ID ...`` (``session_id`` of the ``init``/``result``)
- codex: ``codex exec --json --skip-git-repo-check resume THREAD_ID PROMPT`` (``thread_id`` of
  ``thread.started``; the resumed run reports the same id)
- gemini: ``gemini -p PROMPT --resume SESSION_ID ...`` (``session_id`` of ``init``; besides
  ``latest`` and an index, ``--resume`` accepts the UUID; the id stays the same)

What each CLI does with each fault
==================================

Observed with the environment above (claude with ``CLAUDE_CODE_MAX_RETRIES=0``, codex with
``request_max_retries = stream_max_retries = 0``). `tests/test_emulator.py` pins every row
except "slow" (its stall test waits 3 s; the 200 s were observed by hand).

**claude** reports a failure in its ``result`` line: ``is_error: true`` (``subtype`` is still
``"success"``), ``api_error_status`` and the text in ``result``; an ``assistant`` line with
model ``<synthetic>`` carries the same text. Exit status 1 for every failure.

==============  ==================================================================================
fault           claude
==============  ==================================================================================
none            exit 0; ``result``: ``is_error: false``, ``result`` = the reply
429             ``429``, ``API Error: Request rejected (429) · <message>`` (the message keeps
                "Please try again in 20s.")
401             ``401``, ``Invalid API key · Fix external API key``
529             ``529``, ``API Error: 529 Overloaded. This is a server-side issue, usually
                temporary — try again in a moment. If it persists, check your inference gateway
                (HOST:PORT).``
500             ``500``, ``API Error: 500 <message>. This is a server-side issue, ...``
400             ``400``, ``API Error: 400 <message>``
disconnect      asks again once **without streaming**; if that breaks too: ``null``, ``API Error:
                Connection to the API was lost (ECONNRESET). This is usually temporary — try
                again.``
malformed       asks again once without streaming; then ``null``, ``API Error: Failed to parse
                JSON``
stall           waits silently (over 200 s observed), no retry: the caller must time out
slow            completes; ``--include-partial-messages`` deltas arrive spaced
==============  ==================================================================================

**codex** prints an ``error`` line and then ``turn.failed`` with the same ``error.message``;
exit status 1 for every failure.

==============  ==================================================================================
fault           codex
==============  ==================================================================================
none            exit 0; ``item.completed`` (``agent_message`` with the text), ``turn.completed``
429             ``exceeded retry limit, last status: 429 Too Many Requests`` (neither the body nor
                the delay is shown)
401             ``unexpected status 401 Unauthorized: <message>, url: <base_url>/v1/responses``
529             ``unexpected status 529 <unknown status code>: <message>, url: ...``
500             ``We’re currently experiencing high demand, which may cause temporary errors.``
                (the body's message is not shown)
400             the raw JSON error body, e.g. ``{"error":{"message":"Invalid request.",...}}``
disconnect      ``stream disconnected before completion: Transport error: network error: error
                decoding response body``
malformed       ``stream disconnected before completion: stream closed before
                response.completed`` (undecodable events are skipped)
stall           waits silently (over 200 s observed), no retry
slow            completes
==============  ==================================================================================

**gemini** reports a failed call in its ``result`` line (``status: "error"``, ``error.type:
"unknown"``, ``error.message: "[API Error: ...]"``) and on stderr (``Error when talking to
Gemini API Full report available at: $TMPDIR/gemini-client-error-....json`` and a stack
trace). For HTTP errors it **exits with the HTTP status modulo 256** (401 → 145, 400 → 144). It
retries 429 and 5xx with backoff for minutes and has no switch to stop that: stdout stays at
``init`` and the user ``message``; only stderr shows progress.

==============  ==================================================================================
fault           gemini
==============  ==================================================================================
none            exit 0; one assistant ``message`` (``delta: true``) per chunk, ``result`` with
                ``status: "success"``
429             retries; stderr ``Attempt N failed with status 429. Retrying with backoff...
                _ApiError: {body}``
429 + retry     with ``gemini_retry_info``: stderr ``Attempt 1 failed: <message>`` then
info            ``Suggested retry after 3s.. Retrying after 5104ms...``; it waits that long
401             no retry; exit 145; ``[API Error: {body}]``; stderr ``... _ApiError: {body}``
529, 500        retries; stderr ``Attempt N failed with status 529. Retrying with backoff...``
400             no retry; exit 144; ``[API Error: {body}]``
disconnect      no retry; exit 1; deltas already received stay printed; ``[API Error:
                terminated]``
malformed       exit 1; ``[API Error: Unterminated string in JSON at position 56]``
stall           waits silently (over 200 s observed), no retry
slow            completes, one delta per chunk
==============  ==================================================================================

With its default retries (no ``CLAUDE_CODE_MAX_RETRIES``) claude retries 429, 529 and 401 up to
10 times, reporting each as a ``system``/``api_retry`` line; gemini has no such switch, so a
supervisor must read its stderr and stop it. A stall is silent in all three: only an idle
timeout of the caller's detects it.

Surprises worth knowing
=======================

- claude sends ``HEAD /`` before its first call (answered 200); in ``-p`` mode it made no
  title-generation or ``count_tokens`` call. After a broken or undecodable stream it repeats the
  request once with ``"stream": false``. It sends its version as ``user-agent`` and a billing
  header as the first system block.
- Without the settings made by `cli_environment`, the CLIs look up hosts outside: claude
  api.anthropic.com, codex chatgpt.com, ab.chatgpt.com and api.github.com, gemini
  play.googleapis.com. The emulator only ever sees loopback traffic.
- codex embeds the environment (``<environment_context>``) and the developer instructions as
  extra messages; gemini sends its ``<session_context>`` as the first part of the first user
  message; claude sends ``<system-reminder>`` blocks and a mid-conversation ``system`` message.
- gemini writes an error report to ``$TMPDIR`` on every failed call (hence ``TMPDIR`` inside the
  scratch home), and re-launches itself unless ``GEMINI_CLI_NO_RELAUNCH=true`` (twice as slow).
"""

from ._app import RecordedRequest as RecordedRequest
from ._homes import CliName as CliName
from ._homes import cli_environment as cli_environment
from ._homes import ensure_scratch_home as ensure_scratch_home
from ._rules import EmulatorRule as EmulatorRule
from ._rules import Fault as Fault
from ._rules import FaultKind as FaultKind
from ._rules import Provider as Provider
from ._rules import RulesFileError as RulesFileError
from ._rules import load_rules as load_rules
from ._rules import parse_rules as parse_rules
from ._server import Emulator as Emulator
from ._server import open_emulator as open_emulator
from ._server import run_emulator_forever as run_emulator_forever
from ._wire import RecordedMessage as RecordedMessage

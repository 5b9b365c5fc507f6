"""JSON extraction: fenced blocks, raw_decode scan, model validation, guarded repair."""

from __future__ import annotations

import json
import operator
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, RootModel

from actors._errors import ErrorCategory, LLMError
from supervisor import _json
from supervisor._json import JSONExtractor, schema_instructions
from tests.helpers import hang_guard


class CodeAnalysis(BaseModel):
    summary: str
    issues: list[str]
    score: float


class Item(BaseModel):
    name: str


Items = RootModel[list[Item]]

GOOD = {"summary": "fine", "issues": ["a", "b"], "score": 0.5}
GOOD_JSON = json.dumps(GOOD)

extractor = JSONExtractor()


def extract(text: str, model: type[BaseModel] | None = None, strict: bool = True) -> Any:
    """`extract_json`, asserting that exactly one of data and error is set."""
    data, error = extractor.extract_json(text, model, strict=strict)
    assert (data is None) != (error is None), (data, error)
    return data, error


# -- strategies ------------------------------------------------------------------------

_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
containers: st.SearchStrategy[Any] = st.one_of(
    st.lists(_values, max_size=4),
    st.dictionaries(st.text(max_size=8), _values, max_size=4),
)
"""Any JSON value whose top level is an object or an array."""

prose: st.SearchStrategy[str] = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="{}[]"),
    max_size=60,
)
"""Text without brackets."""

stray_prose: st.SearchStrategy[str] = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from('{}[]{}[]":,'),  # brackets (and JSON punctuation) often, not rarely
    ),
    max_size=60,
)
"""Text with stray brackets: the hard case, before the JSON (see `_no_json_starts_in`)."""

stray_before: st.SearchStrategy[str] = st.one_of(
    stray_prose,
    # An unpaired opener right before the JSON is the hardest case: its decode runs into
    # the real JSON and fails only past it. Generated often, not left to chance.
    st.builds(operator.add, stray_prose, st.text(alphabet="[{ \n", min_size=1, max_size=3)),
)
"""What comes before the JSON in the stray-bracket properties."""

_decoder = json.JSONDecoder()


def _no_json_starts_in(text: str, end: int) -> bool:
    """True when no JSON object or array in ``text`` starts before index ``end``.

    Stray brackets can happen to form JSON of their own (``"[]"``, or ``"["`` and ``"]"``
    around the value): then that JSON is a right answer too, and the property is moot.
    """
    for index in range(min(end, len(text))):
        if text[index] in "{[":
            try:
                _decoder.raw_decode(text, index)
            except ValueError:
                continue
            return False
    return True


dump_styles: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [{}, {"indent": 2}, {"ensure_ascii": False}, {"separators": (",", ":")}]
)


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value))


# -- properties ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(value=containers, before=prose, after=prose, style=dump_styles, strict=st.booleans())
def test_json_in_prose_is_extracted(
    value: Any, before: str, after: str, style: dict[str, Any], strict: bool
) -> None:
    text = f"{before}{json.dumps(value, **style)}{after}"
    assert extract(text, strict=strict) == (_normal(value), None)


@settings(max_examples=300)
@given(value=containers, before=stray_before, after=prose, style=dump_styles, strict=st.booleans())
@example(value=[], before="[", after="", style={}, strict=True)  # found by this property
def test_json_after_stray_brackets_is_extracted(
    value: Any, before: str, after: str, style: dict[str, Any], strict: bool
) -> None:
    text = f"{before}{json.dumps(value, **style)}{after}"
    assume(_no_json_starts_in(text, len(before)))
    assert extract(text, strict=strict) == (_normal(value), None)


@settings(max_examples=200)
@given(
    summary=st.text(max_size=20),
    score=st.floats(allow_nan=False, allow_infinity=False),
    before=stray_before,
    strict=st.booleans(),
)
@example(summary="x", score=0.5, before="see [", strict=True)
def test_the_model_is_found_after_stray_brackets(
    summary: str, score: float, before: str, strict: bool
) -> None:
    wanted = {"summary": summary, "issues": [], "score": score}
    text = f"{before} {json.dumps(wanted)}"
    assume(_no_json_starts_in(text, len(before)))
    data, error = extract(text, CodeAnalysis, strict=strict)
    assert error is None, error
    assert data == _normal(wanted)


@settings(max_examples=100, deadline=None)
@given(value=containers, before=prose, after=prose, style=dump_styles)
def test_json_in_json_fence_is_extracted(
    value: Any, before: str, after: str, style: dict[str, Any]
) -> None:
    text = f"{before}\n```json\n{json.dumps(value, **style)}\n```\n{after}"
    assert extract(text) == (_normal(value), None)


@settings(max_examples=100, deadline=None)
@given(value=containers, before=prose, after=prose, fence=st.sampled_from(["```", "~~~"]))
def test_json_in_bare_fence_is_extracted(value: Any, before: str, after: str, fence: str) -> None:
    text = f"{before}\n{fence}\n{json.dumps(value, indent=2)}\n{fence}\n{after}"
    assert extract(text) == (_normal(value), None)


@settings(max_examples=50, deadline=None)
@given(items=st.lists(_values, min_size=1, max_size=5), before=prose, after=prose)
def test_top_level_array_is_extracted(items: list[Any], before: str, after: str) -> None:
    data, error = extract(f"{before}{json.dumps(items)}{after}")
    assert error is None
    assert isinstance(data, list)
    assert data == _normal(items)


@settings(max_examples=50, deadline=None)
@given(
    summary=st.text(max_size=20),
    issues=st.lists(st.text(max_size=10), max_size=3),
    score=st.floats(allow_nan=False, allow_infinity=False),
    before=prose,
)
def test_the_object_that_fits_the_model_wins(
    summary: str, issues: list[str], score: float, before: str
) -> None:
    wanted = {"summary": summary, "issues": issues, "score": score}
    decoy = {"summary": summary, "issues": issues}  # misses score
    text = f"{before} for example {json.dumps(decoy)}, but really {json.dumps(wanted)}"
    data, error = extract(text, CodeAnalysis)
    assert error is None
    assert data == _normal(wanted)
    assert CodeAnalysis.model_validate(data).score == score


@settings(max_examples=100, deadline=None)
@given(text=prose, strict=st.booleans())
def test_prose_is_never_json(text: str, strict: bool) -> None:
    data, error = extract(text, strict=strict)
    assert data is None
    assert error is not None
    if "```" not in text and "~~~" not in text:
        assert error == f"no JSON object or array found in the answer ({len(text)} chars of prose)"


@settings(max_examples=50, deadline=None)
@given(
    words=st.lists(
        st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_placeholders_are_not_repaired_into_objects(words: list[tuple[str, bool]]) -> None:
    text = "Use " + " and ".join(f"{{{w}}}" if braces else f"[{w}]" for w, braces in words) + "."
    assert extract(text, strict=False) == (
        None,
        f"no JSON object or array found in the answer ({len(text)} chars of prose)",
    )


# -- messy answers ---------------------------------------------------------------------

TRAILING_COMMAS = 'Sure! Here it is:\n{"summary": "fine", "issues": ["a", "b",], "score": 0.5,}\n'
SINGLE_QUOTES = "Result: {'summary': 'fine', 'issues': ['a', 'b'], 'score': 0.5} Done."


@pytest.mark.parametrize("text", [TRAILING_COMMAS, SINGLE_QUOTES])
def test_malformed_json_is_an_error_in_strict_mode(text: str) -> None:
    data, error = extract(text, CodeAnalysis)
    assert data is None
    assert error.startswith("JSON found but malformed: ")
    assert error.endswith("(strict mode; pass strict=False to attempt repair)")


@pytest.mark.parametrize("text", [TRAILING_COMMAS, SINGLE_QUOTES])
def test_malformed_json_is_repaired_when_asked(text: str) -> None:
    assert extract(text, CodeAnalysis, strict=False) == (GOOD, None)
    assert extract(text, strict=False) == (GOOD, None)


def test_malformed_fenced_block_is_reported_and_repaired() -> None:
    text = '```json\n{"summary": "fine", "issues": ["a", "b"], "score": 0.5,}\n```'
    data, error = extract(text, CodeAnalysis)
    assert data is None
    assert error.startswith("JSON found but malformed: fenced block 1: Expecting property name")
    assert extract(text, CodeAnalysis, strict=False) == (GOOD, None)


def test_error_says_where_json_broke() -> None:
    _, error = extract('Intro.\n\n{"summary": "fine",\n "score": 0.5,}')
    assert "Expecting property name enclosed in double quotes: line 4 column 15 (char 42)" in error


def test_braces_in_prose_do_not_hide_the_object() -> None:
    text = f"Use {{name}} in templates, or {{user.id}}. Result: {GOOD_JSON}"
    assert extract(text) == (GOOD, None)
    assert extract(text, CodeAnalysis) == (GOOD, None)


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    ("text", "expected"),
    [("[[]", []), ("see [ [1, 2]", [1, 2]), ('cut {"k": {"a": 1}', {"a": 1})],
)
def test_a_stray_open_bracket_does_not_hide_the_json_after_it(
    text: str, expected: Any, strict: bool
) -> None:
    # Each stray bracket's decode runs into the real JSON and fails only at its end.
    assert extract(text, strict=strict) == (expected, None)


def test_braces_in_prose_before_malformed_json() -> None:
    text = (
        "Use {name} in templates. Result: {'summary': 'fine', 'issues': ['a', 'b'], 'score': 0.5,}"
    )
    assert extract(text, CodeAnalysis, strict=False) == (GOOD, None)
    # json-repair alone would have made {"Result": {...}} out of the whole text.
    assert extract(text, strict=False) == (GOOD, None)


@pytest.mark.parametrize("fence", ["```json", "```", "~~~"])
def test_only_the_second_fenced_block_validates(fence: str) -> None:
    close = fence[:3]
    text = (
        f'First attempt:\n{fence}\n{{"summary": "draft"}}\n{close}\n'
        f"Final:\n{fence}\n{GOOD_JSON}\n{close}\n"
    )
    assert extract(text, CodeAnalysis) == (GOOD, None)
    assert extract(text) == ({"summary": "draft"}, None)  # no model: the first block


def test_only_the_first_fenced_block_validates() -> None:
    text = f'```json\n{GOOD_JSON}\n```\nand an example:\n```json\n{{"summary": "x"}}\n```'
    assert extract(text, CodeAnalysis) == (GOOD, None)


def test_fenced_block_preferred_over_json_in_prose() -> None:
    text = 'An example: {"summary": "x"}.\n\n```json\n{"answer": 42}\n```'
    assert extract(text) == ({"answer": 42}, None)


def test_valid_fence_after_malformed_fence_wins() -> None:
    text = f'```json\n{{"summary": "fine",,}}\n```\n```json\n{GOOD_JSON}\n```'
    assert extract(text, CodeAnalysis) == (GOOD, None)


def test_closing_fence_glued_to_the_json() -> None:
    assert extract(f"```json\n{GOOD_JSON}```") == (GOOD, None)


def test_objects_inside_malformed_json_are_not_answers() -> None:
    text = '{"summary": "fine", "nested": {"score": 1}, oops}'
    data, error = extract(text)
    assert data is None
    assert error.startswith("JSON found but malformed")
    assert extract(text, strict=False) == ({"summary": "fine", "nested": {"score": 1}}, None)


TRUNCATED_COMPLETE_FIELDS = 'Here: {"summary": "fine", "score": 0.5, "issues": ["a", "b"'
TRUNCATED_MISSING_FIELD = 'Here: {"summary": "fine", "issues": ["a", "b"'


@pytest.mark.parametrize("text", [TRUNCATED_COMPLETE_FIELDS, TRUNCATED_MISSING_FIELD])
def test_truncated_json_is_an_error_in_strict_mode(text: str) -> None:
    data, error = extract(text, CodeAnalysis)
    assert data is None
    assert error.startswith("JSON found but malformed: Expecting ',' delimiter")
    assert "strict=False" in error


def test_truncated_json_repaired_when_the_fields_are_all_there() -> None:
    data, error = extract(TRUNCATED_COMPLETE_FIELDS, CodeAnalysis, strict=False)
    assert error is None
    assert CodeAnalysis.model_validate(data) == CodeAnalysis.model_validate(GOOD)


def test_truncated_json_missing_a_field_is_not_invented() -> None:
    data, error = extract(TRUNCATED_MISSING_FIELD, CodeAnalysis, strict=False)
    assert data is None
    assert "failed validation against CodeAnalysis: score: Field required" in error


def test_truncated_json_in_an_unclosed_fence() -> None:
    text = '```json\n{"summary": "fine", "score": 0.5, "issues": ["a", "b"'
    assert extract(text, CodeAnalysis)[0] is None
    assert extract(text, CodeAnalysis, strict=False) == (GOOD, None)


@pytest.mark.parametrize("strict", [True, False])
def test_plain_prose_is_an_error(strict: bool) -> None:
    text = "I could not analyse the code, sorry. Please send it again."
    assert extract(text, CodeAnalysis, strict=strict) == (
        None,
        f"no JSON object or array found in the answer ({len(text)} chars of prose)",
    )


@pytest.mark.parametrize("strict", [True, False])
def test_placeholder_is_not_an_object(strict: bool) -> None:
    # json-repair on its own turns this into ['name}.'].
    assert extract("Use {name}.", strict=strict) == (
        None,
        "no JSON object or array found in the answer (11 chars of prose)",
    )


def test_json_that_does_not_fit_lists_the_field_errors() -> None:
    text = 'Result: {"summary": "fine", "issues": "none", "score": "high"}'
    data, error = extract(text, CodeAnalysis)
    assert data is None
    assert error.startswith("candidate 1 of 1 failed validation against CodeAnalysis: ")
    assert "issues: Input should be a valid list" in error
    assert "score: Input should be a valid number" in error
    # Repair cannot help a value that already parses.
    assert extract(text, CodeAnalysis, strict=False) == (None, error)


def test_the_closest_candidate_is_reported() -> None:
    text = '{"summary": 1} and {"summary": "fine", "issues": [], "score": "high"}'
    _, error = extract(text, CodeAnalysis)
    assert error == (
        "candidate 2 of 2 failed validation against CodeAnalysis: "
        "score: Input should be a valid number, unable to parse string as a number"
    )


def test_many_field_errors_are_summarised() -> None:
    class Wide(BaseModel):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int

    _, error = extract("{}", Wide)
    assert error.endswith("e: Field required; ... and 2 more")


def test_top_level_array_with_a_root_model() -> None:
    text = 'Found:\n[{"name": "x"}, {"name": "y"}]\nThat is all.'
    assert extract(text, Items) == ([{"name": "x"}, {"name": "y"}], None)
    assert extractor.extract_model(text, Items).root == [Item(name="x"), Item(name="y")]


def test_repair_too_large() -> None:
    small = JSONExtractor(max_repair_chars=20)
    data, error = small.extract_json(TRAILING_COMMAS, CodeAnalysis, strict=False)
    assert data is None
    assert error is not None
    assert "too large to repair" in error
    assert "max_repair_chars=20" in error


def test_max_candidates_stops_the_scan() -> None:
    few = JSONExtractor(max_candidates=3)
    data, error = few.extract_json("[1] [2] [3] [4] " + GOOD_JSON, CodeAnalysis)
    assert data is None
    assert error is not None
    assert error.endswith("(stopped after max_candidates=3)")
    assert extract("[1] [2] [3] [4] " + GOOD_JSON, CodeAnalysis) == (GOOD, None)


@pytest.mark.parametrize("options", [{"max_candidates": 0}, {"max_repair_chars": -1}])
def test_options_must_be_positive(options: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be a positive int"):
        JSONExtractor(**options)


# How long these take is measured by bench/extract.py (milliseconds); here the guard only
# catches a hang, such as a quadratic rescan of a megabyte (minutes).
MEGABYTE_HANG_GUARD_S = 120


def megabyte_answer() -> str:
    filler = "The quick brown fox uses {placeholder} [citation needed] in templates.\n" * 15_000
    assert len(filler) > 1_000_000
    return f"{filler}\nFinal answer: {GOOD_JSON}\n{filler}"


def megabyte_of_prose() -> str:
    return "Nothing to see here, just {words}.\n" * 30_000


def test_megabyte_answer() -> None:
    with hang_guard(MEGABYTE_HANG_GUARD_S):
        data, error = extractor.extract_json(megabyte_answer(), CodeAnalysis)
    assert (data, error) == (GOOD, None)


def test_megabyte_of_prose_without_json() -> None:
    text = megabyte_of_prose()
    for strict in (True, False):
        with hang_guard(MEGABYTE_HANG_GUARD_S):
            outcome = extract(text, CodeAnalysis, strict=strict)
        assert outcome == (
            None,
            f"no JSON object or array found in the answer ({len(text)} chars of prose)",
        )


# -- extract_model and schema_instructions ---------------------------------------------


def test_extract_model_returns_the_instance() -> None:
    result = extractor.extract_model(f"```json\n{GOOD_JSON}\n```", CodeAnalysis)
    assert result == CodeAnalysis(summary="fine", issues=["a", "b"], score=0.5)


def test_extract_model_raises_malformed_output() -> None:
    with pytest.raises(LLMError) as caught:
        extractor.extract_model(TRAILING_COMMAS, CodeAnalysis)
    assert caught.value.category is ErrorCategory.MALFORMED_OUTPUT
    assert not caught.value.is_retryable
    assert "strict=False" in caught.value.message
    repaired = extractor.extract_model(TRAILING_COMMAS, CodeAnalysis, strict=False)
    assert repaired.score == 0.5


def test_schema_instructions_carry_the_compact_schema() -> None:
    suffix = schema_instructions(CodeAnalysis)
    schema = json.dumps(CodeAnalysis.model_json_schema(), separators=(",", ":"))
    assert schema in suffix
    assert "JSON" in suffix
    assert suffix.startswith("\n\n")


@pytest.mark.parametrize("strict", [True, False])
def test_json_after_thousands_of_unmatched_brackets_is_found(strict: bool) -> None:
    # Too deep for the decoder from the first "[": that used to hide the JSON after it
    # behind "nesting too deep".
    text = "[" * 5000 + " then " + GOOD_JSON
    with hang_guard(MEGABYTE_HANG_GUARD_S):
        data, error = extractor.extract_json(text, CodeAnalysis, strict=strict)
    assert (data, error) == (GOOD, None)


def test_json_after_a_megabyte_of_code_full_of_braces_is_found() -> None:
    line = "    cfg = {'name': [1, 2], \"x\": {k: v for k, v in items}, 'y': [a[i] for i in r]}\n"
    code = line * (1_000_000 // len(line) + 1)
    text = f"```python\n{code}```\nFinal answer: {GOOD_JSON}\n"
    with hang_guard(MEGABYTE_HANG_GUARD_S):
        data, error = extractor.extract_json(text, CodeAnalysis)
    assert (data, error) == (GOOD, None)


# -- the fast bracket pass (supervisor/_json.py `_Brackets`, `_skip_failures`) ----------

bracket_soup: st.SearchStrategy[str] = st.text(
    alphabet=st.sampled_from('[]{}[]{}""\\ \n:,a1'), max_size=60
)
"""Brackets, quotes, backslashes and newlines: every case of the pairing rules."""


@settings(max_examples=500)
@given(text=bracket_soup, data=st.data())
def test_the_lazy_bracket_pass_pairs_exactly_like_the_full_one(text: str, data: Any) -> None:
    reference = _json._match_brackets(text)
    lazy = _json._Brackets(text)
    order = data.draw(st.permutations(range(len(text) + 1)), label="questions in this order")
    for index in order:
        assert lazy.end(index) == reference.get(index), index


code_lines: st.SearchStrategy[str] = st.lists(
    st.sampled_from(
        [
            "cfg = {'name': [1, 2], \"x\": {k: v for k in r}}\n",
            "cfg = {   'spaced': 1}\n",
            'see [ [1, 2] and {"a": 1} ]\n',
            'bad = {"a": [1, 2}\n',
            's = "a { quote\n',
            'ok = {"a": 1}\n',
            "arr = [x for x in y]\n",
            '```json\n{"a": 2}\n```\n',
            "{'deep': {'x': {'y': {'z': {'w': [1]}}}}}\n",
            "stray [ here\n",
            "}\n",
        ]
    ),
    max_size=40,
).map("".join)
"""Code full of dict literals, with JSON, malformed JSON and fences among it."""


@settings(max_examples=300)
@given(text=code_lines, max_candidates=st.integers(1, 4), strict=st.booleans())
def test_skipping_wrong_first_tokens_in_bulk_changes_no_outcome(
    text: str, max_candidates: int, strict: bool, monkeypatch_class: Any
) -> None:
    """Once enough failures are recorded, `_scanned` steps over failing dict literals in
    one regex match; the data, and the reason, are those of stepping one by one."""
    fast = JSONExtractor(max_candidates=max_candidates)
    with monkeypatch_class.context() as patch:
        patch.setattr(_json._ExtractionRun, "_recorded_enough", lambda self: False)
        slow = fast.extract_json(text, Items, strict=strict), fast.extract_json(text)
    assert (fast.extract_json(text, Items, strict=strict), fast.extract_json(text)) == slow


@pytest.fixture(scope="module")
def monkeypatch_class() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_json_after_hundreds_of_failing_dict_literals_is_found() -> None:
    literals = "cfg = {'name': [1, 2], \"x\": {k: v}}\n" * 1000
    data, error = extractor.extract_json(f"{literals}answer: [1, 2]\n")
    assert (data, error) == ([1, 2], None)


def test_the_failure_that_got_furthest_is_reported_after_hundreds_of_others() -> None:
    literals = "cfg = {'name': 1}\n" * 1000
    text = f"{literals}cfg = {{      'spaced': 1}}\n{literals}"
    data, error = extractor.extract_json(text, CodeAnalysis)
    assert data is None
    assert error == (
        "JSON found but malformed: Expecting property name enclosed in double quotes: "
        "line 1001 column 14 (char 18013) (strict mode; pass strict=False to attempt repair)"
    )

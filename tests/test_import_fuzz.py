"""Property-based fuzzing (hypothesis) of every importer, `eval import` and answer extraction.

Whatever the file holds (any Unicode, unpaired surrogates, control characters, inf/nan, 5,000-digit
numbers, nesting thousands deep, wrong types), an import either stores exactly what it reports or
raises ImportFailed and stores nothing; answer extraction never raises and never guesses out of range.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import datasets, predictions
from core.answers import extract_answer
from core.errors import ImportFailed
from core.formats.base import parse_answer
from core.store import Store

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Raw JSON tokens json.dumps cannot write (or writes only one way): swapped in after dumping.
RAW = {"__HUGE__": "9" * 5000, "__DEEP__": "[" * 3000 + "]" * 3000, "__NEG_HUGE__": "-" + "1" * 4400,
       "__BIG_FLOAT__": "1e999"}

text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x3000), max_size=20),
    st.sampled_from(["", " ", "\x00", "\ud800", "a\udfffb", "\x1b[31m", "③", "정답", "1e999", "Infinity",
                     "NaN", "-0", "3.0", "９", "\u200b", "\r\n", "ㄱ, ㄴ"]),
)
scalar = st.one_of(
    st.none(), st.booleans(), text, st.integers(min_value=-10, max_value=10), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(list(RAW)),
)
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3),
                     max_leaves=8)
choices = st.one_of(st.lists(text, min_size=0, max_size=6), value)
wild_row = st.fixed_dictionaries(
    {"question": value, "choices": choices},
    optional={"id": value, "answer": value, "paragraph": value, "passage_id": value, "points": value,
              "subject": value, "question_plus": value},
)
word = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["가", "나", "다", "\x00다", "라\x1b", "ㄱ, ㄴ"]))
# Mostly well-formed rows with hostile details, so that imports also succeed and what they store is checked.
near_row = st.fixed_dictionaries(
    {"question": word, "choices": st.lists(word, min_size=2, max_size=5)},
    optional={"id": st.one_of(word, st.integers(), st.sampled_from(list(RAW))),
              "answer": st.one_of(st.integers(min_value=0, max_value=6), scalar),
              "paragraph": st.one_of(word, st.none()), "passage_id": st.sampled_from(["p1", "p2", None]),
              "points": st.one_of(st.integers(min_value=-1, max_value=5), scalar), "subject": word},
)
row = st.one_of(near_row, near_row, wild_row)


def dump(obj: object) -> str:
    out = json.dumps(obj, ensure_ascii=True)
    for token, raw in RAW.items():
        out = out.replace(f'"{token}"', raw)
    return out


def cell(v: object) -> str:
    if v is None:
        return ""
    return RAW.get(v, v) if isinstance(v, str) else dump(v)


def write_csv(path: Path, header: list[str], rows: list[list[object]], encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows([[cell(v) for v in r] for r in rows])
    path.write_bytes(buf.getvalue().encode(encoding, errors="surrogatepass"))
    return path


def counts(store: Store) -> tuple[int, int, int]:
    return (store.scalar("SELECT count(*) FROM datasets"), store.scalar("SELECT count(*) FROM questions"),
            store.scalar("SELECT count(*) FROM passages"))


def check_import(store: Store, path: Path, fmt: str = "auto", skip_bad: bool = False) -> None:
    """The property: success stores what it says (clean text), failure is ImportFailed and stores nothing."""
    before = counts(store)
    name = uuid.uuid4().hex[:8]
    try:
        result = datasets.import_file(store, path, name, "train", fmt=fmt, skip_bad=skip_bad)
    except ImportFailed:
        assert counts(store) == before
        return
    stored = store.rows("SELECT qid, question, extra, choices, answer, points FROM questions WHERE dataset = ?", [name])
    assert len(stored) == result.imported and result.imported > 0
    for q in stored:
        for t in [q["qid"], q["question"], q["extra"], *q["choices"]]:
            assert t is None or not any(ord(c) < 32 and c not in "\t\n\r" for c in t)
        assert q["answer"] is None or 1 <= q["answer"] <= len(q["choices"])
        assert q["points"] is None or math.isfinite(q["points"])


@pytest.fixture
def fuzz_store(tmp_path):
    s = Store(tmp_path / "fuzz.duckdb")
    yield s
    s.close()


def test_generic_jsonl(fuzz_store, tmp_path):
    @SETTINGS
    @given(rows=st.lists(row, min_size=1, max_size=5), skip_bad=st.booleans())
    def run(rows, skip_bad):
        path = tmp_path / "f.jsonl"
        path.write_text("\n".join(dump(r) for r in rows) + "\n", encoding="utf-8")
        check_import(fuzz_store, path, skip_bad=skip_bad)

    run()


def test_generic_json_and_kice(fuzz_store, tmp_path):
    @SETTINGS
    @given(rows=st.lists(row, min_size=1, max_size=4), pid=st.lists(value, min_size=1, max_size=3),
           skip_bad=st.booleans())
    def run(rows, pid, skip_bad):
        plain = tmp_path / "f.json"
        plain.write_text(dump(rows), encoding="utf-8")
        check_import(fuzz_store, plain, skip_bad=skip_bad)
        kice = tmp_path / "k.json"
        passages = [{"id": p, "paragraph": rows[0].get("paragraph"), "problems": rows} for p in pid]
        kice.write_text(dump(passages), encoding="utf-8")
        check_import(fuzz_store, kice, fmt="kice", skip_bad=skip_bad)

    run()


def test_csv_formats(fuzz_store, tmp_path):
    cells_row = st.one_of(st.lists(scalar, min_size=7, max_size=7),
                          st.tuples(word, word, word, word, word, st.integers(min_value=0, max_value=5), word).map(list))

    @SETTINGS
    @given(cells=st.lists(cells_row, min_size=1, max_size=4),
           encoding=st.sampled_from(["utf-8", "utf-16", "cp949"]), skip_bad=st.booleans())
    def run(cells, encoding, skip_bad):
        def write(name, header, rows):
            try:
                return write_csv(tmp_path / name, header, rows, encoding)
            except UnicodeEncodeError:  # cp949 cannot hold every character: nothing to import
                return None

        kmmlu = write("k.csv", ["question", "A", "B", "C", "D", "answer", "Category"], cells)
        generic = write("g.csv", ["id", "question", "choices", "answer", "points", "paragraph", "subject"], cells)
        boost = write("b.csv", ["id", "paragraph", "problems"],
                      [[r[0], r[1], repr({"question": r[2], "choices": [r[3], r[4]], "answer": r[5]})] for r in cells])
        for path in filter(None, (kmmlu, generic, boost)):
            check_import(fuzz_store, path, skip_bad=skip_bad)

    run()


def test_eval_import_refuses_with_import_failed_only(tmp_path):
    @SETTINGS
    @given(rows=st.lists(st.tuples(scalar, scalar), min_size=0, max_size=5))
    def run(rows):
        path = write_csv(tmp_path / "sub.csv", ["id", "answer"], [list(r) for r in rows])
        try:
            got = predictions.read_predictions_csv(path)
        except ImportFailed:
            return
        assert all(a is None or 1 <= a <= 5 for a in got.values())

    run()


@SETTINGS
@given(v=value)
def test_parse_answer_raises_only_value_error(v):
    v = RAW.get(v, v) if isinstance(v, str) else v
    try:
        got = parse_answer(v)
    except ValueError:
        return
    assert got is None or isinstance(got, int)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(reply=st.one_of(st.text(max_size=300), st.lists(st.sampled_from(
    ['{"Answer": "3"}', '{"Answer":"⑤"}', "정답은 ②", "답: 4번", "\n", "{", "}", '{"answer": 99}', "①이 정답이다",
     "\\boxed{2}", "\x00", "\ud800", "3번 또는 4번", "Answer: 1e999", "{" * 50,
     '{"Answer": "' + "x" * 3000 + '"}', '{"Answer": 3, "why": "' + "y" * 3000 + '"}']), max_size=12).map("".join)),
       n=st.integers(min_value=1, max_value=10))
def test_answer_extraction_never_raises_or_guesses(reply, n):
    ext = extract_answer(reply, n)
    assert (ext.answer is None) == (ext.method == "none")
    assert ext.answer is None or 1 <= ext.answer <= n
    assert isinstance(ext.reason, str) and 0 < len(ext.reason) <= 400  # stored on every row: kept short

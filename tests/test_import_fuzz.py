"""Property-based fuzzing (hypothesis) of every importer, `eval import` and answer extraction.

Importers: questions (generic JSONL/JSON/CSV, KICE, KMMLU, boostcamp, column names and mappings
included), predictions (`eval import`), preference pairs (JSONL, CSV, a datasets folder) and the
augment step's targets list. Whatever the file holds (any Unicode, unpaired surrogates in values
and in column names, control characters, inf/nan, 5,000-digit numbers, nesting thousands deep,
wrong types), an import either stores exactly what it reports or refuses with a CoreError and stores
nothing, not even a run record; answer extraction never raises and never guesses out of range.

Each test runs CSAT_FUZZ_EXAMPLES examples (default 60: under a minute for the file on 2 cores);
`CSAT_FUZZ_EXAMPLES=800 pytest -s tests/test_import_fuzz.py` writes over 10,000 files and prints
how many it wrote.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import unicodedata
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.answers import extract_answer
from core.errors import CoreError, ImportFailed
from core.steps.data import datasets
from core.steps.data.formats.base import parse_answer
from core.steps.evaluate import predictions
from core.steps.review import preference_sets as ps
from core.store import Store

EXAMPLES = int(os.environ.get("CSAT_FUZZ_EXAMPLES") or 60)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FILES = {"written": 0, "stored": 0}  # files handed to an importer / imported, reported at the end


@pytest.fixture(scope="module", autouse=True)
def report_count():
    yield
    print(f"\nfuzz: {FILES['written']} generated files given to an importer ({FILES['stored']} imported, the rest "
          f"refused), {EXAMPLES} examples per test, 0 unexpected exceptions (any fails its test)")

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
    FILES["written"] += 1
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    FILES["written"] += 1
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
    FILES["stored"] += 1
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
        path = write_text(tmp_path / "f.jsonl", "\n".join(dump(r) for r in rows) + "\n")
        check_import(fuzz_store, path, skip_bad=skip_bad)

    run()


def test_generic_json_and_kice(fuzz_store, tmp_path):
    @SETTINGS
    @given(rows=st.lists(row, min_size=1, max_size=4), pid=st.lists(value, min_size=1, max_size=3),
           skip_bad=st.booleans())
    def run(rows, pid, skip_bad):
        plain = write_text(tmp_path / "f.json", dump(rows))
        check_import(fuzz_store, plain, skip_bad=skip_bad)
        passages = [{"id": p, "paragraph": rows[0].get("paragraph"), "problems": rows} for p in pid]
        kice = write_text(tmp_path / "k.json", dump(passages))
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


# -- column names, mappings ----------------------------------------------------------------------

colname = st.one_of(st.sampled_from(["id", "question", "choices", "answer", "paragraph", "subject", "stem",
                                     "options", "", " ", "question ", "\ud800", "a\udfffb", "\x00", "정답"]), text)


def test_question_column_names_and_mappings(fuzz_store, tmp_path):
    """Rows keyed by hostile column names (surrogates, blanks, NULs, near-duplicates), mapped or not."""
    @SETTINGS
    @given(rows=st.lists(st.dictionaries(colname, st.one_of(word, value), max_size=6), min_size=1, max_size=4),
           base=near_row, mapping=st.dictionaries(st.sampled_from(["question", "choices", "id", "answer", "bogus"]),
                                                   colname, max_size=2), skip_bad=st.booleans())
    def run(rows, base, mapping, skip_bad):
        rows = [{**base, **r} for r in rows]
        jsonl = write_text(tmp_path / "c.jsonl", "\n".join(dump(r) for r in rows) + "\n")
        header = list(dict.fromkeys(k for r in rows for k in r))
        try:
            csv_path = write_csv(tmp_path / "c.csv", header, [[r.get(k) for k in header] for r in rows])
        except ValueError:  # a NUL in a header the csv module refuses to write: nothing to import
            csv_path = None
        for path in filter(None, (jsonl, csv_path)):
            before = counts(fuzz_store)
            try:
                datasets.import_file(fuzz_store, path, uuid.uuid4().hex[:8], "train", skip_bad=skip_bad,
                                     mapping=mapping or None)
            except ImportFailed:
                assert counts(fuzz_store) == before
            else:
                check_import(fuzz_store, path, skip_bad=skip_bad)  # the stored rows hold clean text

    run()


# -- predictions (eval import into a dataset) ----------------------------------------------------

def test_eval_import_into_a_dataset(fuzz_store, tmp_path):
    from tests.minidata import import_mini

    import_mini(fuzz_store, tmp_path, n=3)
    ids = st.one_of(st.sampled_from(["q1", "q2", "q3", " q1", "q1\x1b[31m"]), text)

    @SETTINGS
    @given(header=st.lists(colname | st.sampled_from(["id", "answer", "ID", " Answer"]), min_size=1, max_size=4),
           rows=st.lists(st.tuples(ids, scalar, scalar), min_size=0, max_size=5))
    def run(header, rows):
        try:
            path = write_csv(tmp_path / "p.csv", header, [list(r)[:len(header)] for r in rows])
        except ValueError:
            return
        before = fuzz_store.scalar("SELECT count(*) FROM predictions")
        try:
            got = predictions.import_predictions(fuzz_store, "mini", path, "fuzz")
        except CoreError:
            assert fuzz_store.scalar("SELECT count(*) FROM predictions") == before
            return
        assert got.stored == fuzz_store.scalar("SELECT count(*) FROM predictions WHERE model = 'fuzz'") > 0
        FILES["stored"] += 1

    run()


# -- preference pairs: JSONL, CSV, datasets folder ----------------------------------------------

PAIR_COLS = ["prompt", "chosen", "rejected", "subject", "question", "chosen_response", "rejected_response",
             "category", "input"]
pair_col = st.one_of(st.sampled_from(PAIR_COLS), colname)
message = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "assistant", "system"]), text),
                                 "content": st.one_of(word, text, value)})
messages = st.lists(message, min_size=0, max_size=4)
pair_value = st.one_of(word, text, messages, value, messages.map(lambda m: json.dumps(m, ensure_ascii=False)))
good_pair = st.fixed_dictionaries(
    {"prompt": st.one_of(word, st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": word}),
                                        min_size=1, max_size=2)),
     "chosen": st.one_of(word, st.just([{"role": "assistant", "content": "답 ①"}])), "rejected": word},
    optional={"subject": word})
# One hostile detail in an otherwise good row (the rows that reach hashing and storing): a value
# with a lone surrogate (also inside a message), a cell nesting thousands deep, or an extra column.
hostile = st.one_of(st.sampled_from(["a\ud800", "\udfff", "__DEEP__", "__HUGE__", "[" * 50, "[]", "\x00", "\x1b[2J"]),
                    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                                    "content": st.sampled_from(["q\ud800", "x", "__DEEP__"])}),
                             min_size=1, max_size=2))
spiked = good_pair.flatmap(lambda g: st.tuples(st.sampled_from(["prompt", "chosen", "rejected", "subject"]), hostile)
                           .map(lambda kv: {**g, kv[0]: kv[1]}))
pair_row = st.one_of(good_pair, spiked, spiked, good_pair.flatmap(
    lambda g: st.dictionaries(pair_col, pair_value, max_size=2).map(lambda extra: {**g, **extra})),
    st.dictionaries(pair_col, pair_value, max_size=5))


def pair_counts(store: Store) -> tuple[int, int, int]:
    return (store.scalar("SELECT count(*) FROM preference_sets"), store.scalar("SELECT count(*) FROM preference_pairs"),
            store.scalar("SELECT count(*) FROM runs"))


def check_pairs(store: Store, source: Path, mapping: dict[str, str] | None = None) -> None:
    """Stored exactly as reported (NFC text, no run left running), or a CoreError and nothing written."""
    before = pair_counts(store)
    name = "f" + uuid.uuid4().hex[:8]
    try:
        result = ps.import_pairs(store, source, name, mapping=mapping)
    except CoreError:
        assert pair_counts(store) == before
        return
    stored = ps.get_pairs(store, name)
    assert len(stored) == result["pairs"] > 0
    FILES["stored"] += 1
    for p in stored:
        texts = [p["chosen"], p["rejected"]] + ([m["content"] for m in p["prompt"]] if isinstance(p["prompt"], list)
                                               else [p["prompt"]])
        assert all(unicodedata.is_normalized("NFC", t) for t in texts)
    assert store.scalar("SELECT count(*) FROM runs WHERE state = 'running'") == 0


def test_pairs_jsonl_and_csv(fuzz_store, tmp_path):
    @SETTINGS
    @given(rows=st.lists(pair_row, min_size=1, max_size=4),
           mapping=st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "subject", "bogus"]), pair_col,
                                   max_size=2))
    def run(rows, mapping):
        check_pairs(fuzz_store, write_text(tmp_path / "p.jsonl", "\n".join(dump(r) for r in rows) + "\n"),
                    mapping or None)
        header = list(dict.fromkeys(k for r in rows for k in r))
        try:
            path = write_csv(tmp_path / "p.csv", header, [[r.get(k) for k in header] for r in rows])
        except ValueError:
            return
        check_pairs(fuzz_store, path, mapping or None)

    run()


def test_pairs_datasets_folder(fuzz_store, tmp_path):
    """Fewer examples: writing a datasets folder costs ~50 ms."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()

    @settings(SETTINGS, max_examples=max(10, EXAMPLES // 6))
    @given(rows=st.lists(st.fixed_dictionaries({"prompt": st.one_of(word, text), "chosen": st.one_of(word, text),
                                                "rejected": st.one_of(word, text)},
                                               optional={"subject": text}), min_size=1, max_size=4),
           names=st.lists(colname, min_size=3, max_size=3))
    def run(rows, names):
        rename = dict(zip(["prompt", "chosen", "rejected"], names)) if len(set(names)) == 3 else {}
        rows = [{rename.get(k, k): v for k, v in r.items()} for r in rows]
        folder = tmp_path / uuid.uuid4().hex[:8]
        try:
            Dataset.from_list(rows).save_to_disk(str(folder))
        except Exception:  # Arrow cannot hold it (a surrogate, an empty column name): no folder to import
            return
        FILES["written"] += 1
        check_pairs(fuzz_store, folder)

    run()


# -- the augment step's targets list -------------------------------------------------------------

def test_targets_list(tmp_path, monkeypatch):
    from core import prompts
    from core.steps.augment import augment
    from core.steps.augment.augment import AugmentConfig

    monkeypatch.setattr(prompts, "OVERRIDE_DIR", tmp_path)
    line = st.one_of(st.sampled_from(["국어: 법률 지문", "# 주석", "", ":", "국어:", ": x", "한국사: a: b"]), text)

    @SETTINGS
    @given(lines=st.lists(line, max_size=6), encoding=st.sampled_from(["utf-8", "cp949", "utf-16"]),
           targets=st.dictionaries(text, text, max_size=3))
    def run(lines, encoding, targets):
        body = "목록\n---user---\n" + "\n".join(lines) + "\n"
        try:
            data = body.encode(encoding)
        except UnicodeEncodeError:
            return
        (tmp_path / "targets.md").write_bytes(data)
        FILES["written"] += 1
        try:
            listed = augment.load_targets()
        except CoreError:
            listed = None
        FILES["stored"] += listed is not None
        assert listed is None or all(s and all(ts) for s, ts in listed.items())
        try:
            AugmentConfig.parse({"mining_run": "m", "teacher": "t", "targets": targets}).digest()
        except CoreError:
            pass

    run()

"""Import benchmark: a 200k-row (~15 MB) generic JSONL, the bulk path against the old row-by-row path.

    .venv/bin/python bench/bench_import.py [--rows 200000] [--old-rows 20000]

The old path (kept here, verbatim, as `old_insert`) stored parsed records with one DuckDB
executemany per table, ~1 ms a row; the current path (core.steps.data.datasets.import_parsed) hands DuckDB
one Arrow table per table. Parsing is shared. The old path is timed on --old-rows rows (it takes
minutes on the full file) and reported in rows/s, next to the new path on the same rows and on the
full file, so the ratio compares like with like. A benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from core.config import UNKNOWN_SUBJECT  # noqa: E402
from core.steps.data import datasets  # noqa: E402
from core.steps.data.formats import parse_file  # noqa: E402
from core.steps.data.formats.base import nfc, sha256_of  # noqa: E402
from core.store import Store  # noqa: E402


def make_jsonl(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"r{i}", "question": f"Which? {i}", "choices": ["가", "나", "다", "라"],
                                "answer": i % 4 + 1}, ensure_ascii=False, separators=(",", ":")) + "\n")


def old_insert(store: Store, parsed, name: str, split: str, source: str, sha256: str) -> int:
    """The store step as it was before the bulk path (issue 11 item 10): executemany per table."""
    passages = {r.passage_id: r.paragraph for r in parsed.records if r.passage_id and r.paragraph}
    questions = [
        (name, r.qid, pos, r.passage_id if r.paragraph else None, r.question, r.extra, r.choices,
         r.answer, r.points, r.subject or UNKNOWN_SUBJECT, "column" if r.subject else "unknown",
         "file" if r.answer is not None else None)
        for pos, r in enumerate(parsed.records)]
    with store.transaction():
        store.execute("INSERT INTO datasets (name, split, format, source, sha256, n_questions) VALUES (?, ?, ?, ?, ?, ?)",
                      [nfc(name), split, parsed.format, source, sha256, len(questions)])
        store.executemany("INSERT INTO passages VALUES (?, ?, ?)", [(name, k, v) for k, v in passages.items()])
        store.executemany(
            "INSERT INTO questions (dataset, qid, position, passage_id, question, extra, choices, answer, points,"
            " subject, subject_source, answer_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", questions)
    return len(questions)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--old-rows", type=int, default=20_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    big, small = tmp / "big.jsonl", tmp / "small.jsonl"
    make_jsonl(big, args.rows)
    make_jsonl(small, args.old_rows)
    print(f"{args.rows:,} rows, {big.stat().st_size / 1e6:.1f} MB; old path timed on {args.old_rows:,} rows")

    store = Store(tmp / "bench.duckdb")
    t_parse_small, parsed_small = timed(lambda: parse_file(small))
    t_old, n_old = timed(lambda: old_insert(store, parsed_small, "old", "train", small.name, sha256_of(small)))
    old_rate = n_old / (t_parse_small + t_old)
    t_new_small, r = timed(lambda: datasets.import_file(store, small, "new-small", "train"))
    new_small_rate = r.imported / t_new_small
    t_parse, parsed = timed(lambda: parse_file(big))
    t_store, r = timed(lambda: datasets.import_parsed(store, parsed, "new-big", "train", source=big.name,
                                                      sha256=sha256_of(big)))
    t_new = t_parse + t_store
    new_rate = r.imported / t_new
    print(f"old path  ({args.old_rows:,} rows): parse {t_parse_small:.2f} s + store {t_old:.2f} s = {old_rate:,.0f} rows/s "
          f"(the full file would take ~{args.rows / old_rate:.0f} s)")
    print(f"new path  ({args.old_rows:,} rows): {t_new_small:.2f} s = {new_small_rate:,.0f} rows/s")
    print(f"new path  ({args.rows:,} rows): parse {t_parse:.2f} s + store {t_store:.2f} s (the store lock is held "
          f"only for this) = {new_rate:,.0f} rows/s")
    print(f"speed-up on the same {args.old_rows:,} rows: {new_small_rate / old_rate:.1f}x; "
          f"full file vs old rate: {new_rate / old_rate:.1f}x")
    store.close()


if __name__ == "__main__":
    main()

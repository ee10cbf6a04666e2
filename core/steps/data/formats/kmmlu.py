"""KMMLU-style CSV: question, A, B, C, D, answer (1-4), Category. Ids are 1-based row numbers."""

from __future__ import annotations

from pathlib import Path

from core.steps.data.formats.base import ROW_ERRORS, Parsed, Record, nfc, parse_answer, row_problem
from core.steps.data.formats.tabular import read_csv_requiring

COLUMNS = ("question", "A", "B", "C", "D", "answer")


def parse(path: Path) -> Parsed:
    rows = read_csv_requiring(path, COLUMNS, "KMMLU")
    out = Parsed("kmmlu")
    for i, row in enumerate(rows, 1):
        where = f"row {i}"
        try:
            answer = parse_answer(row.get("answer"))
            letters = [c for c in "ABCDE" if c in row and (c != "E" or row.get("E"))]
            out.records.append(Record(
                qid=nfc(row.get("id")) or str(i), question=nfc(row.get("question")) or "",
                choices=[nfc(row.get(c)) or "" for c in letters], answer=answer,
                subject=nfc(row.get("Category")) or nfc(row.get("subject")), where=where,
            ))
        except ROW_ERRORS as exc:
            out.bad(where, row_problem(exc))
    return out

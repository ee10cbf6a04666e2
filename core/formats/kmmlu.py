"""KMMLU-style CSV: question, A, B, C, D, answer (1-4), Category. Ids are 1-based row numbers."""

from __future__ import annotations

from pathlib import Path

from core.errors import ImportFailed
from core.formats.base import Parsed, Record, nfc, parse_answer
from core.formats.tabular import csv_columns, read_csv

COLUMNS = ("question", "A", "B", "C", "D", "answer")


def parse(path: Path) -> Parsed:
    rows = read_csv(path)
    columns = csv_columns(path)  # from the header, so a file with no data rows is checked too
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ImportFailed(f"{path.name} lacks column(s) {', '.join(missing)} of the KMMLU format",
                           hint=f"columns found: {', '.join(columns)}")
    out = Parsed("kmmlu")
    for i, row in enumerate(rows, 1):
        where = f"row {i}"
        try:
            answer = parse_answer(row.get("answer"))
        except ValueError as exc:
            out.bad(where, str(exc))
            continue
        letters = [c for c in "ABCDE" if c in row and (c != "E" or row.get("E"))]
        out.records.append(Record(
            qid=nfc(row.get("id")) or str(i), question=nfc(row.get("question")) or "",
            choices=[nfc(row.get(c)) or "" for c in letters], answer=answer,
            subject=nfc(row.get("Category")) or nfc(row.get("subject")), where=where,
        ))
    return out

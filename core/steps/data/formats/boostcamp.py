"""Boostcamp CSV: id, paragraph, problems (Python-literal dict), question_plus."""

from __future__ import annotations

import ast
from pathlib import Path

from core.steps.data.formats.base import (
    ROW_ERRORS,
    Parsed,
    Record,
    nfc,
    parse_answer,
    parse_choices,
    passage_key,
    row_problem,
)
from core.steps.data.formats.tabular import read_csv_requiring

COLUMNS = ("id", "paragraph", "problems")


def parse(path: Path) -> Parsed:
    rows = read_csv_requiring(path, COLUMNS, "Boostcamp")
    out = Parsed("boostcamp")
    for i, row in enumerate(rows, 1):
        shown = row["id"] if len(row.get("id") or "") <= 40 else row["id"][:40] + "…"
        where = f"row {i}" + (f" (id {shown})" if row.get("id") else "")
        try:
            # literal_eval, never eval: the file is untrusted input (DESIGN.md §5).
            problem = ast.literal_eval(row.get("problems") or "")
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            out.bad(where, "problems is not a readable Python-literal dict")
            continue
        if not isinstance(problem, dict) or "question" not in problem or "choices" not in problem:
            out.bad(where, "problems must be a dict with 'question' and 'choices'")
            continue
        try:
            choices = parse_choices(problem["choices"])
            answer = parse_answer(problem.get("answer"))
            paragraph = nfc(row.get("paragraph"))
            out.records.append(Record(
                qid=nfc(row.get("id")) or "", question=nfc(problem.get("question")) or "",
                choices=choices, answer=answer, paragraph=paragraph, passage_id=passage_key(paragraph),
                extra=nfc(row.get("question_plus")) or nfc(problem.get("question_plus")),
                subject=nfc(row.get("subject")), where=where,
            ))
        except ROW_ERRORS as exc:
            out.bad(where, row_problem(exc))
    return out

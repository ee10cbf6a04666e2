"""Generic JSONL / JSON / CSV / Parquet / HF datasets folder, with a column mapping.

The mapping names, for each field, the source column (`choices` may name several columns,
"A,B,C,D"). Fields left out are found by their usual names, so our own JSONL export
re-imports with no mapping at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ImportFailed
from core.steps.data.formats import tabular
from core.steps.data.formats.base import (
    ROW_ERRORS,
    Parsed,
    Record,
    nfc,
    parse_answer,
    parse_choices,
    parse_points,
    passage_key,
    row_problem,
)

FIELDS = ("id", "paragraph", "passage_id", "question", "extra", "choices", "answer", "points", "subject")
USUAL = {
    "id": ("id", "qid", "question_id"),
    "paragraph": ("paragraph", "passage", "context"),
    "passage_id": ("passage_id",),
    "question": ("question", "stem"),
    "extra": ("question_plus", "extra", "보기"),
    "choices": ("choices", "options"),
    "answer": ("answer", "label", "gold"),
    "points": ("points", "score"),
    "subject": ("subject", "category", "Category"),
}


def load_rows(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        return tabular.read_hf_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return tabular.read_csv(path)
    if suffix == ".parquet":
        return tabular.read_parquet(path)
    if suffix == ".json":
        data = tabular.read_json(path)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ImportFailed(f"{path.name}: expected a JSON list of objects")
        return data
    return tabular.read_jsonl(path)


def resolve_mapping(columns: list[str], mapping: dict[str, str] | None) -> dict[str, list[str]]:
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise ImportFailed(f"unknown mapping field(s) {', '.join(sorted(unknown))}",
                           hint=f"fields are {', '.join(FIELDS)}")
    resolved: dict[str, list[str]] = {}
    for name in FIELDS:
        if name in mapping:
            cols = [c.strip() for c in mapping[name].split(",")] if name == "choices" else [mapping[name]]
            absent = [c for c in cols if c not in columns]
            if absent:
                raise ImportFailed(f"mapped column(s) {', '.join(absent)} not in the file",
                                   hint=f"columns found: {', '.join(columns)}")
            resolved[name] = cols
        else:
            found = next((c for c in USUAL[name] if c in columns), None)
            if found:
                resolved[name] = [found]
    missing = [f for f in ("question", "choices") if f not in resolved]
    if missing:
        raise ImportFailed(f"no column for {', '.join(missing)}",
                           hint=f"map one with --map FIELD=COLUMN; columns found: {', '.join(columns)}")
    return resolved


def parse(path: Path, mapping: dict[str, str] | None = None) -> Parsed:
    rows = load_rows(path)
    if not rows:
        raise ImportFailed(f"{path.name} has no rows")
    columns = list(dict.fromkeys(k for r in rows[:50] for k in r if isinstance(k, str)))
    cols = resolve_mapping(columns, mapping)
    out = Parsed("generic")
    unit = "line" if path.suffix.lower() == ".jsonl" else "row"

    def get(row: dict, field: str) -> Any:
        return row.get(cols[field][0]) if field in cols else None

    for i, row in enumerate(rows, 1):
        where = f"{unit} {i}"
        if isinstance(row, tabular.BadRow):
            out.bad(where, row.problem)
            continue
        try:
            if len(cols["choices"]) > 1:
                choices = [nfc(row.get(c)) or "" for c in cols["choices"]]
                while choices and not choices[-1]:  # a 4-choice row in a 5-column file
                    choices.pop()
            else:
                choices = parse_choices(get(row, "choices"))
            answer = parse_answer(get(row, "answer"))
            points = parse_points(get(row, "points"))
            paragraph = nfc(get(row, "paragraph"))
            out.records.append(Record(
                qid=nfc(get(row, "id")) or str(i), question=nfc(get(row, "question")) or "",
                choices=choices, answer=answer, paragraph=paragraph,
                passage_id=nfc(get(row, "passage_id")) or passage_key(paragraph),
                extra=nfc(get(row, "extra")), points=points, subject=nfc(get(row, "subject")), where=where,
            ))
        except ROW_ERRORS as exc:  # any one row's problem is that row's, with its number
            out.bad(where, row_problem(exc))
    return out

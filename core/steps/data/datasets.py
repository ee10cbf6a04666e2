"""Datasets in the store: import (all-or-nothing), list, browse, delete, export."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import SAMPLE_DIR, UNKNOWN_SUBJECT, key_values
from core.errors import ImportFailed, NotFound
from core.steps.data.formats import Issue, Parsed, parse_file
from core.steps.data.formats.base import has_surrogate, nfc, sha256_of, shown_name

if TYPE_CHECKING:
    from core.store import Store

SPLITS = ("train", "seed", "test")
SAMPLES = {"sample-train": ("train_pool.json", "train"), "sample-test": ("test.json", "test")}


@dataclass
class ImportResult:
    name: str
    format: str
    imported: int
    skipped: list[Issue] = field(default_factory=list)
    already: bool = False  # the same file was imported under this name before: nothing changed
    notes: list[str] = field(default_factory=list)  # what the import changed, e.g. control characters removed


def parse_mapping(items: list[str] | None, example: str = "question=stem --map choices=A,B,C,D") -> dict[str, str]:
    """--map FIELD=COLUMN (questions and preference pairs alike); an empty COLUMN is refused too."""
    mapping = key_values(items, "--map", example, error=ImportFailed)
    empty = [k for k, v in mapping.items() if not v]
    if empty:
        raise ImportFailed(f"--map {empty[0]}= names no column", hint=f"write FIELD=COLUMN, e.g. --map {example}")
    return mapping


def import_parsed(store: Store, parsed: Parsed, name: str, split: str, *, source: str, sha256: str,
                  subject: str | None = None, skip_bad: bool = False, replace: bool = False) -> ImportResult:
    name = nfc(name) or ""
    if not name:
        raise ImportFailed("a dataset needs a name")
    if has_surrogate(name) or has_surrogate(source):
        raise ImportFailed(f"the dataset name {name!r} is not valid Unicode text", hint="name it in UTF-8 text")
    if split not in SPLITS:
        raise ImportFailed(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
    if parsed.issues and not skip_bad:
        raise ImportFailed(
            f"{len(parsed.issues)} bad row(s) in {source}; nothing was imported", parsed.issues,
            hint="fix them, or import with --skip-bad to leave them out",
        )
    if not parsed.records:
        raise ImportFailed(f"no valid questions in {source}; nothing was imported", parsed.issues)
    existing = store.rows("SELECT sha256 FROM datasets WHERE name = ?", [name])
    if existing and existing[0]["sha256"] == sha256 and not replace:
        return ImportResult(name, parsed.format, 0, parsed.issues, already=True)
    if existing and not replace:
        raise ImportFailed(f"a dataset named {name!r} already exists with other content",
                           hint="choose another name, delete it first, or use --replace")
    subject = nfc(subject)
    recs = parsed.records
    passages = {r.passage_id: r.paragraph for r in recs if r.passage_id and r.paragraph}
    questions = {
        "dataset": [name] * len(recs), "qid": [r.qid for r in recs], "position": list(range(len(recs))),
        "passage_id": [r.passage_id if r.paragraph else None for r in recs],
        "question": [r.question for r in recs], "extra": [r.extra for r in recs],
        "choices": [r.choices for r in recs], "answer": [r.answer for r in recs],
        "points": [r.points for r in recs],
        "subject": [r.subject or subject or UNKNOWN_SUBJECT for r in recs],
        "subject_source": ["column" if r.subject else "import" if subject else "unknown" for r in recs],
        "answer_source": ["file" if r.answer is not None else None for r in recs],
    }
    with store.transaction():
        if existing:
            _delete(store, name)
        store.execute(
            "INSERT INTO datasets (name, split, format, source, sha256, n_questions) VALUES (?, ?, ?, ?, ?, ?)",
            [name, split, parsed.format, source, sha256, len(recs)],
        )
        _bulk_insert(store, "passages", {"dataset": [name] * len(passages), "passage_id": list(passages),
                                         "text": list(passages.values())})
        _bulk_insert(store, "questions", questions)
    return ImportResult(name, parsed.format, len(recs), parsed.issues, notes=parsed.notes)


# Arrow types of the columns an import writes (DuckDB casts them to the table's own types).
_ARROW_TYPES = {"position": "int32", "answer": "int32", "points": "float64", "choices": "list<string>"}


def _bulk_insert(store: Store, table: str, columns: dict[str, list[Any]]) -> None:
    """One Arrow table in one INSERT: ~100x faster than executemany (~1-2 ms a row), so a 200k-row
    import holds the store for about a second. Call inside the import's transaction."""
    if not columns or not next(iter(columns.values())):
        return
    import pyarrow as pa

    def arrow_type(name: str) -> pa.DataType:
        kind = _ARROW_TYPES.get(name, "string")
        return pa.list_(pa.string()) if kind == "list<string>" else getattr(pa, kind)()

    data = pa.table({c: pa.array(v, type=arrow_type(c)) for c, v in columns.items()})
    names = ", ".join(columns)
    view = f"_import_{table}"
    with store.lock:  # the connection's registry is per connection: register, insert, drop as one step
        store.writes += 1  # a write on store.con: page caches keyed on store.writes must see it
        store.con.register(view, data)
        try:
            store.con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {view}")
        finally:
            store.con.unregister(view)


def import_file(store: Store, path: str | Path, name: str, split: str, *, fmt: str = "auto",
                subject: str | None = None, skip_bad: bool = False, replace: bool = False,
                mapping: dict[str, str] | None = None, source: str | None = None) -> ImportResult:
    """Parse, validate and store a file in one transaction: a failure stores nothing."""
    path = Path(path)
    parsed = parse_file(path, fmt, mapping)
    return import_parsed(store, parsed, name, split, source=source or shown_name(path), sha256=sha256_of(path),
                         subject=subject, skip_bad=skip_bad, replace=replace)


def load_samples(store: Store) -> list[ImportResult]:
    """The bundled sample sets; importing them again changes nothing."""
    return [import_file(store, SAMPLE_DIR / file, name, split) for name, (file, split) in SAMPLES.items()]


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """The `data list --json` contract: name, split, questions, points, subjects."""
    sets = store.rows("SELECT name, split, format, source, created_at FROM datasets ORDER BY created_at, name")
    stats = {r["dataset"]: r for r in store.rows(
        "SELECT dataset, count(*) AS n, sum(points) AS points, count(points) AS with_points "
        "FROM questions GROUP BY dataset")}
    subjects: dict[str, dict[str, int]] = {}
    for r in store.rows("SELECT dataset, subject, count(*) AS n FROM questions GROUP BY ALL ORDER BY dataset, n DESC, subject"):
        subjects.setdefault(r["dataset"], {})[r["subject"]] = r["n"]
    out = []
    for s in sets:
        st = stats.get(s["name"], {"n": 0, "points": None, "with_points": 0})
        points = st["points"] if st["with_points"] else None
        out.append({
            "name": s["name"], "split": s["split"], "questions": st["n"],
            "points": (int(points) if points is not None and float(points).is_integer() else points),
            "subjects": subjects.get(s["name"], {}),
            "format": s["format"], "source": s["source"], "created_at": str(s["created_at"]),
        })
    return out


def require(store: Store, name: str) -> dict[str, Any]:
    row = store.rows("SELECT * FROM datasets WHERE name = ?", [name])
    if not row:
        names = [r["name"] for r in store.rows("SELECT name FROM datasets ORDER BY name")]
        raise NotFound(f"no dataset named {name!r}", hint=f"datasets: {', '.join(names) or 'none yet'}")
    return row[0]


def questions(store: Store, name: str, search: str | None = None, subject: str | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
    """Questions with their passage text, in file order; `search` matches any text field."""
    require(store, name)
    sql = ("SELECT q.*, p.text AS paragraph FROM questions q LEFT JOIN passages p "
           "ON p.dataset = q.dataset AND p.passage_id = q.passage_id WHERE q.dataset = ?")
    params: list[Any] = [name]
    if subject:
        sql += " AND q.subject = ?"
        params.append(subject)
    if search:
        needle = f"%{nfc(search)}%"
        sql += (" AND (q.question ILIKE ? OR q.extra ILIKE ? OR p.text ILIKE ? OR q.qid = ?"
                " OR array_to_string(q.choices, ' ') ILIKE ?)")
        params += [needle, needle, needle, nfc(search), needle]
    sql += " ORDER BY q.position"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return store.rows(sql, params)


def _delete(store: Store, name: str) -> None:
    """A replaced dataset takes what was made from its old content (core/cascade.py), in the
    import's transaction; a frozen preference set made from it refuses the replace."""
    from core import cascade

    cascade.delete_rows(store, "dataset", name)


def delete_plan(store: Store, name: str):
    """What deleting the dataset would remove, table by table, and what stops it (core/cascade.py)."""
    from core import cascade

    require(store, name)
    return cascade.plan(store, "dataset", name)


def delete_dataset(store: Store, name: str) -> int:
    """Delete a dataset and everything derived from it (mining runs, predictions, replies only it
    used, …: core/cascade.py); refuses when a frozen preference set was made from it. Returns how
    many questions went."""
    from core import cascade

    require(store, name)
    return cascade.delete(store, "dataset", name).counts.get("questions", 0)


def export_dataset(store: Store, name: str, fmt: str, out: str | Path) -> int:
    """jsonl: every field (re-importable as generic); submission: `id,answer` CSV."""
    rows = questions(store, name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with out.open("w", encoding="utf-8") as f:
            for q in rows:
                f.write(json.dumps({
                    "id": q["qid"], "passage_id": q["passage_id"], "paragraph": q["paragraph"],
                    "question": q["question"], "question_plus": q["extra"], "choices": list(q["choices"]),
                    "answer": q["answer"], "points": q["points"], "subject": q["subject"],
                }, ensure_ascii=False) + "\n")
    elif fmt == "submission":
        with out.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "answer"])
            w.writerows([q["qid"], q["answer"] if q["answer"] is not None else ""] for q in rows)
    else:
        raise ImportFailed(f"unknown export format {fmt!r}", hint="choose jsonl or submission")
    return len(rows)


def set_subjects(store: Store, name: str, subjects: dict[str, str], source: str) -> None:
    """Label questions with a subject (e.g. from the classifier), recording where it came from."""
    store.executemany("UPDATE questions SET subject = ?, subject_source = ? WHERE dataset = ? AND qid = ?",
                      [(subject, source, name, qid) for qid, subject in subjects.items()])


def pipeline_counts(store: Store) -> dict[str, Any]:
    """What the Data step holds, for the Home page and the sidebar."""
    return {
        "datasets": store.scalar("SELECT count(*) FROM datasets"),
        "questions": store.scalar("SELECT count(*) FROM questions"),
        "last": store.scalar("SELECT max(created_at) FROM datasets"),
    }

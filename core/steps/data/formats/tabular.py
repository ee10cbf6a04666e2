"""Reading tables (CSV, JSONL, JSON, Parquet, HF datasets folder) into lists of dicts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from core.config import MAX_IMPORT_MB
from core.errors import ImportFailed
from core.steps.data.formats.base import read_text

# A cell may be as long as a whole file may be (the csv module's default stops at 131,072 chars).
FIELD_LIMIT = int(MAX_IMPORT_MB * 1024 * 1024)


class BadRow(dict):
    """A line that parsed as JSON syntax but cannot be read as a row (nesting too deep, a number
    too large): the importer reports it with its line number, and --skip-bad leaves it out."""

    def __init__(self, problem: str):
        super().__init__()
        self.problem = problem


def _check_header(path: Path, fieldnames: list[str] | None) -> None:
    names = [(c or "").strip() for c in fieldnames or []]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise ImportFailed(f"{path.name}: duplicate column(s) {', '.join(map(repr, dupes))} in the header",
                           hint="rename them: which one holds the data cannot be guessed")


def read_csv(path: Path) -> list[dict[str, Any]]:
    """CSV rows as dicts of strings; blank cells become None."""
    text = read_text(path)
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        _check_header(path, reader.fieldnames)
        rows = []
        for row in reader:
            if None in row:  # more cells than header columns
                raise ImportFailed(
                    f"{path.name}, row {len(rows) + 1}: {len(row) - 1 + len(row[None])} cells "
                    f"but the header has {len(reader.fieldnames or [])} columns",
                    hint="check quoting of commas and line breaks",
                )
            rows.append({k.strip(): (v if v != "" else None) for k, v in row.items() if k is not None})
    except csv.Error as exc:
        raise ImportFailed(f"{path.name}, line {reader.line_num}: not valid CSV ({exc})",
                           hint="check quoting; a cell may hold at most the import size limit") from None
    if not reader.fieldnames:
        raise ImportFailed(f"{path.name} has no header row")
    return rows


def read_csv_requiring(path: Path, required: tuple[str, ...], format_name: str) -> list[dict[str, Any]]:
    """CSV rows, after checking the header has every column a format needs (empty files included)."""
    columns = csv_columns(path, check=False)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ImportFailed(f"{path.name} lacks column(s) {', '.join(missing)} of the {format_name} format",
                           hint=f"columns found: {', '.join(columns)}")
    return read_csv(path)


def csv_columns(path: Path, check: bool = True) -> list[str]:
    """The header's column names; check: refuse duplicates (which one holds the data?)."""
    first = read_text(path).splitlines()[0]
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    try:
        columns = [c.strip() for c in next(csv.reader([first]))]
    except csv.Error as exc:
        raise ImportFailed(f"{path.name}, line 1: not a valid CSV header ({exc})") from None
    if check:
        _check_header(path, columns)
    return columns


class JsonProblem(str):
    """Why one JSONL line could not be read; `syntax` is True for invalid JSON (the file is refused),
    False for valid syntax that cannot be read as a value (nesting too deep, a number too large)."""

    syntax: bool = False


def jsonl_lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed value or JsonProblem) for each non-blank line: one parse loop for every
    JSONL reader, each of which says in its own words what a problem means."""
    out: list[tuple[int, Any]] = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((i, json.loads(line)))
        except json.JSONDecodeError as exc:
            problem = JsonProblem(exc.msg)
            problem.syntax = True
            out.append((i, problem))
        except RecursionError:
            out.append((i, JsonProblem("nested too deeply to read")))
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            out.append((i, JsonProblem(f"unreadable value ({str(exc).split(':')[0]})")))
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, obj in jsonl_lines(path):
        if isinstance(obj, JsonProblem):
            if obj.syntax:
                raise ImportFailed(f"{path.name}, line {i}: not valid JSON ({obj})")
            rows.append(BadRow(str(obj)))
            continue
        if not isinstance(obj, dict):
            raise ImportFailed(f"{path.name}, line {i}: expected a JSON object")
        rows.append(obj)
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise ImportFailed(f"{path.name}: nested too deeply to read",
                           hint="a question file nests a few levels: check how it was made") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ImportFailed(f"{path.name}: unreadable value ({str(exc).split(':')[0]})") from None


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ImportFailed(f"{path.name} is not a readable Parquet file: {exc}") from None


def read_hf_folder(path: Path) -> list[dict[str, Any]]:
    """A folder written by `datasets.Dataset.save_to_disk` (a DatasetDict uses its first split)."""
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as exc:
        raise ImportFailed(f"{path.name} is not a Hugging Face datasets folder: {exc}") from None
    if isinstance(ds, DatasetDict):
        ds = ds[next(iter(ds))]
    return ds.to_list()

"""Reading tables (CSV, JSONL, JSON, Parquet, HF datasets folder) into lists of dicts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from core.errors import ImportFailed
from core.formats.base import read_text


def read_csv(path: Path) -> list[dict[str, Any]]:
    """CSV rows as dicts of strings; blank cells become None."""
    text = read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
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
        raise ImportFailed(f"{path.name} is not valid CSV: {exc}") from None
    if not reader.fieldnames:
        raise ImportFailed(f"{path.name} has no header row")
    return rows


def read_csv_requiring(path: Path, required: tuple[str, ...], format_name: str) -> list[dict[str, Any]]:
    """CSV rows, after checking the header has every column a format needs (empty files included)."""
    rows = read_csv(path)
    columns = csv_columns(path)
    missing = [c for c in required if c not in columns]
    if missing:
        raise ImportFailed(f"{path.name} lacks column(s) {', '.join(missing)} of the {format_name} format",
                           hint=f"columns found: {', '.join(columns)}")
    return rows


def csv_columns(path: Path) -> list[str]:
    first = read_text(path).splitlines()[0]
    return [c.strip() for c in next(csv.reader([first]))]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{path.name}, line {i}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ImportFailed(f"{path.name}, line {i}: expected a JSON object")
        rows.append(obj)
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


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

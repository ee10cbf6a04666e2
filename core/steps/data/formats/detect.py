"""Format detection and the single entry point `parse_file`."""

from __future__ import annotations

from pathlib import Path

from core.errors import ImportFailed
from core.steps.data.formats import boostcamp, generic, kice, kmmlu
from core.steps.data.formats.base import Parsed, check_size, validate
from core.steps.data.formats.tabular import csv_columns, read_json

FORMATS = ("auto", "boostcamp", "kice", "kmmlu", "generic")


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "generic"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        cols = set(csv_columns(path))
        if {"paragraph", "problems"} <= cols:
            return "boostcamp"
        if {"question", "A", "B", "C", "D", "answer"} <= cols:
            return "kmmlu"
        return "generic"
    if suffix == ".json":
        data = read_json(path)
        if isinstance(data, list) and data and all(isinstance(p, dict) and "problems" in p for p in data):
            return "kice"
        return "generic"
    if suffix in (".jsonl", ".parquet"):
        return "generic"
    raise ImportFailed(f"{path.name}: unknown file type {suffix or '(none)'}",
                       hint="use .csv, .json, .jsonl, .parquet or a datasets folder, or pass --format")


def parse_file(path: str | Path, fmt: str = "auto", mapping: dict[str, str] | None = None) -> Parsed:
    """Parse and validate a file without storing anything; issues say where and what."""
    path = Path(path)
    if not path.exists():
        raise ImportFailed(f"{path} does not exist")
    if fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    check_size(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "boostcamp":
        parsed = boostcamp.parse(path)
    elif fmt == "kice":
        parsed = kice.parse(path)
    elif fmt == "kmmlu":
        parsed = kmmlu.parse(path)
    else:
        parsed = generic.parse(path, mapping)
    validate(parsed)
    return parsed

"""What every importer produces, and the checks every record goes through."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import MAX_IMPORT_MB
from core.errors import ImportFailed

CIRCLED = "①②③④⑤⑥⑦⑧⑨"


@dataclass
class Record:
    """One question as parsed from a source row, before it is stored."""

    qid: str
    question: str
    choices: list[str]
    answer: int | None = None
    paragraph: str | None = None
    passage_id: str | None = None
    extra: str | None = None
    points: float | None = None
    subject: str | None = None
    where: str = ""  # "row 3", "passage 2, question 1": how messages point at the source


@dataclass
class Issue:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class Parsed:
    format: str
    records: list[Record] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    skipped_rows: set[str] = field(default_factory=set)

    def bad(self, where: str, message: str) -> None:
        self.issues.append(Issue(where, message))
        self.skipped_rows.add(where)


def nfc(value: Any) -> str | None:
    """Text as NFC with surrounding blanks removed; None for missing/NaN/empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


def check_size(path: Path) -> None:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    if size > MAX_IMPORT_MB * 1024 * 1024:
        raise ImportFailed(
            f"{path.name} is {size / 1048576:.1f} MB, over the import limit of {MAX_IMPORT_MB:g} MB",
            hint="split the file, or raise CSAT_MAX_IMPORT_MB",
        )


def read_text(path: Path) -> str:
    """Decode UTF-8 (with or without BOM), else CP949 (common for Korean files), else fail."""
    data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:  # binary (image, archive, …): CP949 would otherwise decode much of it as text
        raise ImportFailed(
            f"{path.name} is not readable text: it contains binary data (NUL byte at {nul})",
            hint="save the file as UTF-8 text, or pick the right file",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        try:
            text = data.decode("cp949")
        except UnicodeDecodeError:
            raise ImportFailed(
                f"{path.name} is not readable text: invalid UTF-8 at byte {exc.start} and not CP949 either",
                hint="save the file as UTF-8",
            ) from None
    if not text.strip():
        raise ImportFailed(f"{path.name} is empty")
    return text


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        digest.update(p.read_bytes())
    return digest.hexdigest()


def parse_answer(value: Any) -> int | None:
    """1-based answer from 3, "3", "3.0", "③"; None when blank. ValueError when unreadable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        raise ValueError(f"answer {value!r} is not a choice number")
    if isinstance(value, int | float):
        if float(value) != int(value):
            raise ValueError(f"answer {value!r} is not a whole number")
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    if len(text) == 1 and text in CIRCLED:
        return CIRCLED.index(text) + 1
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"answer {text!r} is not a choice number") from None
    if number != int(number):
        raise ValueError(f"answer {text!r} is not a whole number")
    return int(number)


def parse_choices(value: Any) -> list[str]:
    """Choices from a list, a JSON list string or a Python-literal list string (never eval)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError("choices is not a list") from None
    if hasattr(value, "tolist"):  # numpy arrays from parquet / datasets
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise ValueError("choices is not a list")
    return [nfc(c) or "" for c in value]


def passage_key(text: str | None) -> str | None:
    """Rows that repeat the same passage share one passage id (they are not independent)."""
    return "p" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10] if text else None


def validate(parsed: Parsed) -> None:
    """Checks every format shares; bad records are reported and removed."""
    seen: dict[str, str] = {}
    good = []
    for rec in parsed.records:
        problems = []
        if not rec.question:
            problems.append("question text is empty")
        if not 2 <= len(rec.choices) <= 5:
            problems.append(f"{len(rec.choices)} choices; a question needs 2 to 5")
        elif any(not c for c in rec.choices):
            problems.append(f"choice {[i + 1 for i, c in enumerate(rec.choices) if not c][0]} is empty")
        if rec.answer is not None and not 1 <= rec.answer <= len(rec.choices):
            problems.append(f"answer {rec.answer} is out of range 1–{len(rec.choices)}")
        if rec.points is not None and not (0 < rec.points <= 100):
            problems.append(f"points {rec.points:g} is not a positive score")
        if not rec.qid:
            problems.append("id is empty")
        elif rec.qid in seen:
            problems.append(f"duplicate id {rec.qid!r} (first at {seen[rec.qid]})")
        if problems:
            parsed.bad(rec.where, "; ".join(problems))
            continue
        seen[rec.qid] = rec.where
        good.append(rec)
    parsed.records = good
    parsed.issues.sort(key=lambda i: [int(n) for n in re.findall(r"\d+", i.where)[:2]])

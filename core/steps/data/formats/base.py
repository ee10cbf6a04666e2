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

from core.answers import CIRCLED  # the one circled-digit constant (①–⑩)
from core.config import MAX_IMPORT_MB
from core.errors import ImportFailed


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
    notes: list[str] = field(default_factory=list)  # changes made to the text, said out loud

    def bad(self, where: str, message: str) -> None:
        self.issues.append(Issue(where, message))
        self.skipped_rows.add(where)


def nfc(value: Any) -> str | None:
    """Text as NFC with surrounding blanks removed; None for missing/NaN/empty."""
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, float) and math.isnan(value):
            return None
        value = str(value)
    if not value.isascii():  # ASCII is always NFC: skip the call (an import makes millions)
        value = unicodedata.normalize("NFC", value)
    return value.strip() or None


def check_size(path: Path) -> None:
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    if size > MAX_IMPORT_MB * 1024 * 1024:
        raise ImportFailed(
            f"{path.name} is {size / 1048576:.1f} MB, over the import limit of {MAX_IMPORT_MB:g} MB",
            hint="split the file, or raise CSAT_MAX_IMPORT_MB",
        )


# Byte-order marks of the UTF-16/32 files that spreadsheet programs save ("Unicode text").
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_text(path: Path) -> str:
    """Decode UTF-16/32 (by their BOM), UTF-8 (with or without BOM), else CP949 (common for
    Korean files), else fail."""
    data = path.read_bytes()
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)  # the codec reads and drops the BOM
            except UnicodeDecodeError as exc:
                raise ImportFailed(f"{path.name} is not readable text: invalid {codec.upper()} at byte {exc.start}",
                                   hint="save the file as UTF-8") from None
            if "\x00" not in text and text.strip():
                return text
            break  # NULs inside: binary data that happens to start like a BOM
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


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value.strip())
    return text if len(text) <= limit else text[:limit] + "…"


def parse_answer(value: Any) -> int | None:
    """1-based answer from 3, "3", "3.0", "③"; None when blank. ValueError when unreadable
    (never OverflowError: inf, 1e999 and 5,000-digit numbers are "not a choice number")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        raise ValueError(f"answer {value!r} is not a choice number")
    if isinstance(value, int):
        if not -1000 < value < 1000:  # range-checked later; a huge one is simply not a choice
            raise ValueError(f"answer {_shown(value)} is not a choice number")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"answer {_shown(value)} is not a whole number")
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    if len(text) == 1 and text in CIRCLED:
        return CIRCLED.index(text) + 1
    try:
        number = float(text) if len(text) <= 40 else math.inf
    except ValueError:
        raise ValueError(f"answer {_shown(text)} is not a choice number") from None
    if not math.isfinite(number) or not -1000 < number < 1000:
        raise ValueError(f"answer {_shown(text)} is not a choice number")
    if number != int(number):
        raise ValueError(f"answer {_shown(text)} is not a whole number")
    return int(number)


def parse_points(value: Any) -> float | None:
    """CSAT points from 2, "3", "2.5"; None when blank. ValueError for anything not a finite number."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        raise ValueError(f"points {value!r} is not a number")
    try:
        number = float(value if not isinstance(value, str) or len(value) <= 40 else "inf")
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"points {_shown(value)} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"points {_shown(value)} is not a number")
    return number


def row_problem(exc: BaseException) -> str:
    """A failure while reading one row, in words (the row is reported, the import goes on)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, OverflowError):
        return "a number is too large"
    if isinstance(exc, UnicodeError):
        return "not valid Unicode text"
    return str(exc) or type(exc).__name__


ROW_ERRORS = (ValueError, TypeError, RecursionError, OverflowError, MemoryError)


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


# C0/C1 control characters except tab and line breaks (NUL, escape codes, DEL…): never stored.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # unpaired halves ("\ud800" in JSON): not text
_TEXT_FIELDS = ("qid", "question", "paragraph", "passage_id", "extra", "subject")


def shown_name(path: Path) -> str:
    """A file's name as text that can be stored and printed: bytes that are not UTF-8 (Python keeps
    them as lone surrogates) become U+FFFD, so a file named in another encoding still imports."""
    return _SURROGATE.sub("\ufffd", path.name)


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def unholdable(row: dict[Any, Any]) -> list[str]:
    """Why a row's column names or values cannot be stored, one line per column: an unpaired
    surrogate (which DuckDB, hashing and the terminal all refuse) in a name or anywhere in a value."""
    problems = []
    for key, value in row.items():
        if isinstance(key, str) and (bad := _SURROGATE.search(key)):
            problems.append(f"column name {_shown(key)} contains an unpaired surrogate "
                            f"(\\u{ord(bad.group()):04x}): not valid Unicode text")
            continue
        stack = [value]
        while stack:  # a walk, not recursion: a value may nest thousands deep
            item = stack.pop()
            if isinstance(item, str):
                if bad := _SURROGATE.search(item):
                    problems.append(f"column {_shown(str(key))}: contains an unpaired surrogate "
                                    f"(\\u{ord(bad.group()):04x}): not valid Unicode text")
                    break
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list | tuple):
                stack.extend(item)
    return problems


def visible_controls(text: str) -> str:
    """Control characters shown as \\xNN, for a terminal (a stored ESC must not drive it); imports
    remove them, but a store made before that may still hold some."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _clean(rec: Record) -> tuple[int, str | None]:
    """Remove control characters from every text field (returns how many) and name an unpaired
    surrogate, which no text can hold (DuckDB would refuse the whole import)."""
    values = [getattr(rec, f) for f in _TEXT_FIELDS] + list(rec.choices)
    joined = "\n".join(v for v in values if isinstance(v, str))
    if not _CONTROL.search(joined) and not _SURROGATE.search(joined):
        return 0, None
    if (bad := _SURROGATE.search(joined)) is not None:
        return 0, f"contains an unpaired surrogate (\\u{ord(bad.group()):04x}): not valid Unicode text"
    removed = 0

    def strip(value: str | None) -> str | None:
        nonlocal removed
        if not value:
            return value
        value, n = _CONTROL.subn("", value)
        removed += n
        return value.strip() or None

    for f in _TEXT_FIELDS:
        setattr(rec, f, strip(getattr(rec, f)))
    rec.choices = [strip(c) or "" for c in rec.choices]
    rec.question = rec.question or ""
    rec.qid = rec.qid or ""
    return removed, None


def validate(parsed: Parsed) -> None:
    """Checks every format shares; bad records are reported and removed.

    Control characters are removed (and said so in `parsed.notes`); a passage id that names two
    different passage texts is refused (never one text silently replacing the other)."""
    seen: dict[str, str] = {}
    passages: dict[str, tuple[str, str]] = {}  # passage id -> (text, where first)
    stripped = rows_stripped = 0
    good = []
    for rec in parsed.records:
        removed, unreadable = _clean(rec)
        if unreadable:
            parsed.bad(rec.where, unreadable)
            continue
        stripped += removed
        rows_stripped += removed > 0
        problems = []
        if rec.passage_id and rec.paragraph:
            first = passages.setdefault(rec.passage_id, (rec.paragraph, rec.where))
            if first[0] != rec.paragraph:
                problems.append(f"passage id {rec.passage_id!r} already names a different passage "
                                f"(at {first[1]}); give each passage its own id")
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
    if stripped:
        parsed.notes.append(f"removed {stripped} control character(s) (NUL, escape codes and the like) "
                            f"from {rows_stripped} row(s)")
    # Row order (a where like "row 12 (id …)"); an id of 5,000 digits sorts by its first 18.
    parsed.issues.sort(key=lambda i: [int(n[:18]) for n in re.findall(r"\d+", i.where)[:2]])

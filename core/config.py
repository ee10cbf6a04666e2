"""Settings from the environment and .streamlit/secrets.toml. Keys are read, never persisted."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from core.errors import CoreError
from core.secrets import register

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
WORKSPACE = Path(os.environ.get("CSAT_WORKSPACE", DATA_DIR / "workspace"))
DEFAULT_DB = WORKSPACE / "csat.duckdb"

# Same limit as .streamlit/config.toml's maxUploadSize, so CLI and page agree.
MAX_IMPORT_MB = float(os.environ.get("CSAT_MAX_IMPORT_MB", "50"))

# The subjects of the original results table, plus 한국사 (the seed's augmentation example).
CSAT_SUBJECTS = ["국어", "생활과 윤리", "윤리와 사상", "사회·문화", "정치와 법", "한국사"]
UNKNOWN_SUBJECT = "unknown"


def db_path(explicit: str | os.PathLike | None = None) -> Path:
    """The DuckDB file: --db, then CSAT_DB, then the workspace default."""
    return Path(explicit or os.environ.get("CSAT_DB") or DEFAULT_DB)


def secret(name: str) -> str | None:
    """A secret from the environment, else from .streamlit/secrets.toml; None when absent."""
    if os.environ.get(name):
        return register(os.environ[name])  # known from now on: redacted wherever it is echoed
    path = ROOT / ".streamlit" / "secrets.toml"
    if path.exists():
        try:
            value = tomllib.loads(path.read_text("utf-8")).get(name)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None
        return register(str(value)) if value else None
    return None


def mask(value: str | None) -> str:
    """Show that a key is set without showing the key."""
    if not value:
        return "(not set)"
    return f"{value[:4]}…{value[-2:]}" if len(value) > 10 else "••••"


def key_values(items: list[str] | None, option: str, example: str, *, error: type[CoreError] = CoreError,
               dashes: bool = False) -> dict[str, str]:
    """The one reader of KEY=VALUE options (--param, --map, --option, sweep grids, the page's
    mapping box): both sides stripped, an empty key or a missing '=' refused naming the option.
    dashes: `max-steps` means `max_steps` (keys that are field names)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_") if dashes else key.strip()
        if not sep or not key:
            raise error(f"{option} takes KEY=VALUE (got {item!r})", hint=f"e.g. {option} {example}")
        out[key] = value.strip()
    return out

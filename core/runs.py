"""The one step shape: a config class per step and a run record per run (DESIGN.md §4).

Every step (solve, mine, evaluate, augment, train, map) has one `StepConfig` subclass; its fields,
defaults, bounds and help text build both the CLI options (core/cli/options.py) and the page form
(pages/_ui.py:config_form). A run stores that config as JSON with its hash and the code version;
the same step with the same config hash is the same run, so running it again resumes it (finished
work comes from the generation cache) and a different config is a different run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from core.errors import CoreError, NotFound
from core.secrets import redact

if TYPE_CHECKING:
    from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
_SURROGATE = re.compile("[\ud800-\udfff]")


class StepConfig(BaseModel):
    """Base of every step's settings. `step` names the step; fields carry `description` as help."""

    model_config = ConfigDict(extra="forbid")
    step: ClassVar[str] = ""
    # Settings that change no result (logging, checkpoint intervals): not part of the run's identity,
    # so changing them resumes the same run.
    not_identity: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _valid_text(self):
        # A lone surrogate (a CLI argument in bytes that are not UTF-8) cannot be hashed or stored.
        stack = list(self.model_dump().items())
        while stack:
            key, value = stack.pop()
            if isinstance(value, str) and _SURROGATE.search(value) or isinstance(key, str) and _SURROGATE.search(key):
                raise ValueError(f"{key!r} holds text that is not valid Unicode (bytes that are not UTF-8?)")
            if isinstance(value, dict):
                stack += [(f"{key}.{k}" if isinstance(k, str) and not _SURROGATE.search(k) else k, v)
                          for k, v in value.items()]
            elif isinstance(value, list | tuple):
                stack += [(key, v) for v in value]
        return self

    def digest(self) -> str:
        """Hash of the canonical JSON (less `not_identity`): what makes two runs the same run."""
        canon = json.dumps(self.model_dump(mode="json", exclude=set(self.not_identity)), sort_keys=True,
                           ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()[:12]

    @classmethod
    def parse(cls, values: dict[str, Any]):
        """Validate, turning pydantic's error into one line a user can act on."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or cls.__name__
            raise CoreError(f"bad {cls.step or 'step'} setting {where}: {err['msg']}",
                            hint="see --help for each setting's range") from None


@functools.cache
def code_version() -> str:
    """The git commit the code runs from (with +dirty), else the package version."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if sha:
            return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "0.1.0"


def open_run(store: Store, config: StepConfig, job_id: str | None = None, *, new: bool = False) -> tuple[str, bool]:
    """The run for this config: the existing one (resumed: True) or a new one. Marks it running.

    new: a run of its own even when one with this config exists (training: the same settings on a
    preference set replaced under its name since)."""
    step, digest = config.step, config.digest()
    existing = None if new else store.scalar(
        "SELECT id FROM runs WHERE step = ? AND config_hash = ? ORDER BY created_at DESC LIMIT 1", [step, digest])
    if existing:
        mark_running(store, existing, job_id, code=code_version())
        return existing, True
    run_id = f"{step}-{uuid.uuid4().hex[:8]}"
    store.execute("INSERT INTO runs (id, step, config, config_hash, code_version, state, job_id) "
                  "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                  [run_id, step, config.model_dump_json(), digest, code_version(), job_id])
    return run_id, False


def mark_running(store: Store, run_id: str, job_id: str | None = None, code: str | None = None) -> None:
    """The run is running again (resumed): no end, no message; a job id or code version when given."""
    store.execute("UPDATE runs SET state = 'running', job_id = coalesce(?, job_id), message = NULL, "
                  "code_version = coalesce(?, code_version), finished_at = NULL WHERE id = ?", [job_id, code, run_id])


@contextmanager
def recording(store: Store, config: StepConfig, job_id: str | None = None) -> Iterator[str]:
    """open_run around a step's body: yields the run id; any exception marks the run failed with its
    reason before it propagates (the body itself finishes the run as done or cancelled)."""
    run_id, _ = open_run(store, config, job_id)
    try:
        yield run_id
    except BaseException as exc:
        finish_run(store, run_id, "failed", message=str(exc) or type(exc).__name__)
        raise


def finish_run(store: Store, run_id: str, state: str, summary: dict[str, Any] | None = None,
               message: str | None = None) -> None:
    store.execute("UPDATE runs SET state = ?, summary = ?, message = ?, finished_at = ? WHERE id = ?",
                  [state, redact(json.dumps(summary, ensure_ascii=False, default=str)) if summary is not None else None,
                   redact(message), datetime.now(), run_id])


def _public(row: dict[str, Any]) -> dict[str, Any]:
    for col in ("config", "summary"):
        row[col] = json.loads(row[col]) if row.get(col) else None
    return row


def get_run(store: Store, run_id: str, step: str | None = None) -> dict[str, Any]:
    rows = store.rows("SELECT * FROM runs WHERE id = ?" + (" AND step = ?" if step else ""),
                      [run_id, step] if step else [run_id])
    if not rows:
        raise NotFound(f"no {step or ''} run '{run_id}'".replace("  ", " "),
                       hint=f"list them with: python -m core {step or 'jobs'} list")
    return _public(rows[0])


def list_runs(store: Store, step: str) -> list[dict[str, Any]]:
    return [_public(r) for r in store.rows("SELECT * FROM runs WHERE step = ? ORDER BY created_at DESC", [step])]


def made_by(run: dict[str, Any]) -> str:
    """One line for result pages: which config and code made this."""
    cfg = run.get("config") or {}
    settings = ", ".join(f"{k}={v}" for k, v in cfg.items() if v not in (None, [], {}, ""))
    return (f"made by {run.get('step')} run {run['id']} · config {run.get('config_hash')} · "
            f"code {run.get('code_version') or '?'} · {settings}")

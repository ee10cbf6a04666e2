"""Background jobs: a row in `jobs` per long step, run in a thread of the process that owns the store.

A page starts a job and returns at once, polls `get_job` (st.fragment with run_every) and may call
`cancel`. The job function receives a JobContext: `ctx.cancel` is the threading.Event the engine
watches, `ctx.progress(...)` records progress (throttled to a couple of writes a second). Only the
owning process can run jobs (DuckDB allows one writer), so a job still marked running or queued that
no thread of this process runs was left by a process that died: it reads as 'interrupted', and
re-running it resumes for free from the generation cache.

est_cost_usd holds the estimate for the whole job until the first tokens come back, then the cost
of the tokens actually used so far (at the end: what the job cost).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.errors import CoreError
from core.secrets import redact

if TYPE_CHECKING:
    from core.store import Store

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled", "interrupted")

# job id -> (cancel flag, finished flag). Waiting uses the finished Event, not Thread.join: a join
# interrupted by Ctrl-C can leave is_alive() False while the thread still runs (CPython < 3.13).
_LIVE: dict[str, tuple[threading.Event, threading.Event]] = {}
_LIVE_LOCK = threading.Lock()


_AUTO = object()  # JobContext.progress: estimate the ETA from the rate of `done`


class JobContext:
    """What a step gets from whoever runs it: its job id, the cancel flag, a throttled progress recorder.

    The page and the CLI both run steps as jobs (`start`), so the one context carries cancel and
    progress from them down to the engine. A step called directly (tests, scripts) gets a local
    context: `JobContext.local(cancel)` records no progress and has no job id.
    """

    def __init__(self, store: Store | None, job_id: str | None, cancel: threading.Event | None = None,
                 cost: Callable[[int, int], float | None] | None = None):
        self.store, self.job_id, self.cost = store, job_id, cost
        self.cancel = cancel if cancel is not None else threading.Event()
        self._last = 0.0
        self._first_done: tuple[float, int] | None = None
        self._latest: dict[str, Any] | None = None

    @classmethod
    def local(cls, cancel: threading.Event | None = None) -> JobContext:
        """A context for a direct call: cancel works, progress goes nowhere."""
        return cls(None, None, cancel)

    def phase(self, offset: int, total: int, tokens: tuple[int, int] = (0, 0)) -> JobContext:
        """A context for one phase of a multi-phase step (the one way steps report phases): the same
        cancel and job, progress shifted by `offset` so the job shows one bar of `total` over every
        phase, and `tokens` (input, output) of the earlier phases added to this phase's counts."""
        parent, child = self, JobContext(None, self.job_id, self.cancel, self.cost)

        def progress(p: Any = None, **kw: Any) -> None:
            if p is None:
                parent.progress(**kw)
                return
            parent.progress(done=offset + p.done, total=max(total, offset + p.total), errors=p.errors,
                            input_tokens=tokens[0] + p.input_tokens, output_tokens=tokens[1] + p.output_tokens,
                            force=kw.get("force", False))

        child.progress = progress  # type: ignore[method-assign]
        return child

    def flush(self) -> None:
        """Write the last progress that throttling held back."""
        if self._latest is not None:
            self.progress(**self._latest, force=True)

    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def progress(self, p: Any = None, *, done: int | None = None, total: int | None = None,
                 errors: int | None = None, input_tokens: int | None = None,
                 output_tokens: int | None = None, message: str | None = None, force: bool = False,
                 eta_s: Any = _AUTO) -> None:
        """Record progress: an engine Progress object, or the fields as keywords.

        eta_s: by default estimated from the rate of `done`; a step in a phase that `done` does not
        measure (UMAP compiling, projecting) passes its own estimate, or None for "unknown"."""
        if self.store is None:
            return
        self._latest = dict(p=p, done=done, total=total, errors=errors, input_tokens=input_tokens,
                            output_tokens=output_tokens, message=message, eta_s=eta_s)
        if p is not None:
            done, total, errors = p.done, p.total, p.errors
            input_tokens, output_tokens = p.input_tokens, p.output_tokens
        now = time.monotonic()
        if done is not None and self._first_done is None:
            self._first_done = (now, done)  # cached items finish at once: the ETA counts from here
        if not force and now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        eta = None
        if done is not None and total and self._first_done and done > self._first_done[1]:
            t0, d0 = self._first_done
            eta = round((now - t0) / (done - d0) * (total - done), 1)
        cost = self.cost(input_tokens or 0, output_tokens or 0) if self.cost and input_tokens is not None else None
        sets = {"done": done, "total": total, "errors": errors, "input_tokens": input_tokens,
                "output_tokens": output_tokens, "eta_s": eta, "message": redact(message), "est_cost_usd": cost}
        sets = {k: v for k, v in sets.items() if v is not None}
        if eta_s is not _AUTO:
            sets["eta_s"] = None if eta_s is None else round(float(eta_s), 1)  # None clears a stale ETA
        cols = ", ".join(f"{k} = ?" for k in sets)
        self.store.execute(f"UPDATE jobs SET {cols}, updated_at = ? WHERE id = ?",
                           [*sets.values(), datetime.now(), self.job_id])


def _finish(store: Store, job_id: str, state: str, message: str | None, result: Any = None,
            trace: str | None = None) -> None:
    store.execute("UPDATE jobs SET state = ?, message = coalesce(?, message), result = ?, eta_s = NULL, "
                  "traceback = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                  [state, redact(message), redact(json.dumps(result, ensure_ascii=False, default=str))
                   if result is not None else None, redact(trace), datetime.now(), datetime.now(), job_id])


def start(store: Store, kind: str, label: str, fn: Callable[[JobContext], Any], *,
          params: dict[str, Any] | None = None, total: int = 0,
          cost: Callable[[int, int], float | None] | None = None, est_cost_usd: float | None = None) -> str:
    """Run fn(ctx) in a background thread; returns the job id at once.

    fn's return value is stored as the job's result (JSON). A CoreError fails the job with its message
    and hint; any other exception fails it with its type and text. fn should return normally when
    ctx.cancel is set: the job then ends 'cancelled'.
    """
    job_id = uuid.uuid4().hex[:12]
    cancel, finished = threading.Event(), threading.Event()
    ctx = JobContext(store, job_id, cancel, cost)

    def target() -> None:
        store.execute("UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ?", [datetime.now(), job_id])
        state, message, result, trace = "done", None, None, None
        try:
            result = fn(ctx)
            if cancel.is_set():
                state, message = "cancelled", "cancelled; run it again to resume"
        except CoreError as exc:
            state, message, trace = "failed", str(exc), traceback.format_exc()
        except Exception as exc:  # the job fails; the dashboard and everything stored survive
            state, message, trace = "failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()
        if trace:
            log.error("job %s (%s) failed: %s\n%s", job_id, kind, message, trace)
        try:
            ctx.flush()
            _finish(store, job_id, state, message, result, trace)
        finally:
            with _LIVE_LOCK:
                _LIVE.pop(job_id, None)
            finished.set()

    thread = threading.Thread(target=target, name=f"job-{kind}-{job_id}", daemon=True)
    with _LIVE_LOCK:  # registered before its row exists, so no reader can take it for a dead job
        _LIVE[job_id] = (cancel, finished)
    now = datetime.now()
    try:
        store.execute("INSERT INTO jobs (id, kind, label, state, total, params, est_cost_usd, started_at, "
                      "updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                      [job_id, kind, label, total, json.dumps(params or {}, ensure_ascii=False, default=str),
                       est_cost_usd, now, now])
    except BaseException:
        with _LIVE_LOCK:
            _LIVE.pop(job_id, None)
        raise
    thread.start()
    return job_id


def cancel(job_id: str) -> bool:
    """Ask a running job to stop; False when no thread of this process runs it."""
    with _LIVE_LOCK:
        live = _LIVE.get(job_id)
    if live is None:
        return False
    live[0].set()
    return True


def wait(job_id: str, timeout: float | None = None) -> bool:
    """Block until the job has finished (its row is final); True when it has."""
    with _LIVE_LOCK:
        live = _LIVE.get(job_id)
    return live is None or live[1].wait(timeout)




def mark_interrupted(store: Store) -> int:
    """Jobs marked active that no thread of this process runs died with their process."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    where = "state IN ('queued', 'running')" + (" AND id NOT IN (SELECT unnest(?::VARCHAR[]))" if live else "")
    n = store.scalar(f"SELECT count(*) FROM jobs WHERE {where}", [live] if live else [])
    if n:
        store.execute(f"UPDATE jobs SET state = 'interrupted', eta_s = NULL, finished_at = ?, "
                      f"message = 'the process running it stopped; run it again to resume' WHERE {where}",
                      [datetime.now(), *([live] if live else [])])
    # A run record that points at such a job (a CLI killed mid-run) reads as 'interrupted' too.
    dead = "state = 'running' AND job_id IS NOT NULL" + (
        " AND job_id NOT IN (SELECT unnest(?::VARCHAR[]))" if live else "")
    # Counted first, as above: a write bumps store.writes, which every page's cached read is keyed on
    # (pages/_ui.py:cached), so an UPDATE of no row on every render would make every page read afresh.
    if store.scalar(f"SELECT count(*) FROM runs WHERE {dead}", [live] if live else []):
        store.execute(f"UPDATE runs SET state = 'interrupted' WHERE {dead}", [live] if live else [])
    return n


def _public(row: dict[str, Any]) -> dict[str, Any]:
    for col in ("params", "result"):
        row[col] = json.loads(row[col]) if row.get(col) else None
    row["live"] = row["id"] in _LIVE
    return row


def get_job(store: Store, job_id: str) -> dict[str, Any] | None:
    mark_interrupted(store)
    rows = store.rows("SELECT * FROM jobs WHERE id = ?", [job_id])
    return _public(rows[0]) if rows else None


def list_jobs(store: Store, kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    mark_interrupted(store)
    sql = "SELECT * FROM jobs" + (" WHERE kind = ?" if kind else "") + f" ORDER BY started_at DESC LIMIT {int(limit)}"
    return [_public(r) for r in store.rows(sql, [kind] if kind else [])]

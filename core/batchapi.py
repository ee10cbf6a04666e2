"""A provider's Batch API (Gemini's) as one engine send: submit once, poll, store every reply.

The engine calls `send` instead of live calls when a model has `batch=true`. The batch's name is
stored (`provider_batches`) before anything else happens, keyed by the digest of its cache keys,
so a run stopped, cancelled or killed while the batch runs re-attaches to that batch on the next
run instead of submitting (and paying for) it again. A batch that failed, expired or was cancelled
on the provider's side is not re-attached: the next run submits a new one. Progress shows the
batch's state (pending / running / succeeded / …) and its size; replies arrive all at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.providers.base import GenParams, Provider, ProviderError, Result

if TYPE_CHECKING:
    from core.providers.base import Model, Request
    from core.store import Store

ENDED = ("failed", "cancelled", "expired")  # on the provider's side: a new batch is needed
POLL_TICK_S = 0.1  # how often a wait checks for cancel


def digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def attached(store: Store, model: str, keys: list[str]) -> dict[str, Any] | None:
    """The batch already submitted for exactly these requests (still running, or done but not yet
    stored), if any. A stored batch is never re-attached: what is still asked failed in it."""
    rows = store.rows("SELECT name, keys, state FROM provider_batches WHERE model = ? AND digest = ? "
                      "AND state NOT IN ('failed', 'cancelled', 'expired', 'stored') "
                      "ORDER BY created_at DESC LIMIT 1",
                      [model, digest(keys)])
    return rows[0] if rows else None


def _set_state(store: Store, name: str, state: str) -> None:
    store.execute("UPDATE provider_batches SET state = ?, updated_at = ? WHERE name = ?",
                  [state, datetime.now(), name])


async def send(store: Store, model: Model, provider: Provider, gen: GenParams, todo: list[tuple[str, Request]],
               finish: Callable[[str, Request, Result], None], stopped: Callable[[], bool],
               progress: Callable[..., None] | None, job_id: str | None) -> None:
    """Submit `todo` as one batch (or re-attach to the one already submitted), wait for it, and
    hand every reply to `finish`. Returns early, the batch left running, when `stopped()`."""
    keys = [k for k, _ in todo]
    by_key = dict(todo)
    tell = _teller(progress)
    found = await asyncio.to_thread(attached, store, model.name, keys)
    if found is not None:
        name = found["name"]
        tell(message=f"re-attached to batch {name} ({found['state']}, {len(keys)} requests)", force=True)
    else:
        name = await _retrying(model, stopped, lambda: provider.batch_create(
            [(k, r.messages) for k, r in todo], gen, f"csat {model.name} {len(keys)} requests"))
        if name is None:
            return
        await asyncio.to_thread(store.execute, "INSERT INTO provider_batches (name, model, digest, keys, state, "
                                "job_id) VALUES (?, ?, ?, ?, 'pending', ?)",
                                [name, model.name, digest(keys), keys, job_id])
    start = time.monotonic()
    while True:
        got = await _retrying(model, stopped, lambda: provider.batch_get(name, keys))
        if got is None:
            return
        state, replies = got
        await asyncio.to_thread(_set_state, store, name, state)
        waited = int(time.monotonic() - start)
        tell(message=f"batch {name}: {state}, {len(keys)} requests, {waited} s waited", force=True)
        if replies is not None:
            for k in keys:  # a request the batch did not answer is stored as an error: sent again next run
                finish(k, by_key[k], replies.get(k) or Result(error="batch: no reply for this request"))
            await asyncio.to_thread(_set_state, store, name, "stored")
            return
        if state in ENDED:
            raise ProviderError(f"batch {name} of model {model.name!r} {state} on the provider's side", fatal=True,
                                hint="run again to submit a new batch (nothing of this one was paid for twice)")
        if not await _wait(model.params.batch_poll_s, stopped):
            return


def _teller(progress: Callable[..., None] | None) -> Callable[..., None]:
    """The job's progress callback for a state message, when it takes one (JobContext.progress
    does; a step's own counter may take only the engine's Progress)."""
    if progress is not None:
        params = inspect.signature(progress).parameters
        if "message" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return progress
    return lambda **kw: None


async def _retrying(model: Model, stopped: Callable[[], bool], call: Callable[[], Any]) -> Any:
    """One Batch API call with the model's retry policy; None when stopped while retrying."""
    attempt = 0
    while True:
        try:
            return await asyncio.wait_for(call(), model.params.timeout_s)
        except TimeoutError:
            err = ProviderError(f"timed out after {model.params.timeout_s:g} s", retryable=True, connection=True)
        except ProviderError as exc:
            err = exc
        if not err.retryable or attempt >= model.params.max_retries:
            raise err
        delay = min(model.params.max_backoff_s, max(model.params.retry_base_s * 2 ** attempt, err.retry_after or 0))
        if not await _wait(delay, stopped):
            return None
        attempt += 1


async def _wait(seconds: float, stopped: Callable[[], bool]) -> bool:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if stopped():
            return False
        await asyncio.sleep(min(left, POLL_TICK_S))
    return not stopped()

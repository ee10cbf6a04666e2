"""The store owner's side of a run: ingest RUN_DIR into DuckDB and settle the run's state.

`sync` is cheap and idempotent; the CLI calls it while waiting, the page on every poll, and any
process that opens the store after a restart calls it for runs still marked running (re-attach):
new metrics lines are ingested, a finished worker's adapter is registered as a model, and a worker
that vanished (crash, OOM kill, reboot) is marked failed with its last log lines and a plain reason.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import lineage
from core.errors import CoreError
from core.steps.train import files, record
from core.steps.train.files import KEYS

if TYPE_CHECKING:
    from core.store import Store

COLUMNS = ["epoch", "elapsed_s", *KEYS.values(), "steps_per_s", "tokens_per_s", "gpu_mem_gb"]
SUMMARY_KEYS = ("run", "state", "backend", "steps", "epochs", "seconds", "final", "adapter_model")
_SAFE = re.compile(r"[^A-Za-z0-9._:@/-]+")


def _num(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v) if math.isfinite(v) else float("nan")
    return None


def ingest_metrics(store: Store, run_id: str, run_dir: Path) -> int:
    """Ingest metrics.jsonl lines not yet seen; a step logged again after a resume replaces the old row."""
    done = store.scalar("SELECT metrics_lines FROM training_runs WHERE id = ?", [run_id]) or 0
    try:
        lines = (run_dir / files.METRICS).read_text("utf-8").splitlines()
    except OSError:
        return 0
    complete = lines if (run_dir / files.METRICS).read_bytes().endswith(b"\n") else lines[:-1]
    new = complete[done:]
    rows = []
    for line in new:
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue
        extra = {k: v for k, v in m.items() if k not in COLUMNS and k != "step"}
        rows.append([run_id, int(m["step"]), *(_num(m.get(c)) for c in COLUMNS), json.dumps(extra, ensure_ascii=False)])
    if rows:
        cols = ", ".join(["run_id", "step", *COLUMNS, "extra"])
        marks = ", ".join("?" * (len(COLUMNS) + 3))
        with store.transaction():
            store.executemany(f"INSERT OR REPLACE INTO training_metrics ({cols}) VALUES ({marks})", rows)
            record.update(store, run_id, metrics_lines=done + len(new))
    elif new:
        record.update(store, run_id, metrics_lines=done + len(new))
    return len(rows)


def vanished_reason(tail: list[str], code: int | None) -> str:
    text = "\n".join(tail).lower()
    if "out of memory" in text or "outofmemoryerror" in text:
        return "out of GPU memory: lower max_length, use load_in_4bit, or install Unsloth"
    if code is not None and code < 0:
        import signal

        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"the worker was killed ({name}): the system may have run out of memory, or someone ended it"
    if code:
        return f"the worker exited with code {code}"
    return "the worker process ended without finishing (killed, out of memory, or the machine restarted)"


def sync(store: Store, run_id: str) -> dict[str, Any]:
    """Bring the run's row up to date with its folder and its worker; returns the run.

    The lock decides (core/steps/train/liveness.py): while the worker holds it the run is running; once
    it is free the worker is gone, and its last status says how it ended (read after the lock, so a
    worker that wrote "done" and exited is never taken for a vanished one). A done status always
    wins, so a run marked failed by mistake heals here; so does one whose worker turns out alive.
    """
    run = record.get(store, run_id)
    if run["state"] not in ("running", "failed"):
        return run
    run_dir = Path(run["run_dir"])
    held = record.alive(run_dir)
    status = files.read_json(run_dir / files.STATUS) or {}
    current = status.get("pid") == run["pid"]
    if run["state"] == "failed":
        if status.get("state") == "done" and Path(status.get("adapter") or run_dir / files.ADAPTER).is_dir():
            _heal(store, run_id, "its worker finished after it was marked failed")
        elif held:
            _heal(store, run_id, "its worker is still running")
        else:
            return run
        run = record.get(store, run_id)
    ingest_metrics(store, run_id, run_dir)
    ingest_heldout(store, run_id, run_dir)
    if status and current:
        record.update(store, run_id, progress=status, backend=status.get("backend"), touch=True)
    if status.get("state") == "done":
        try:
            _finish_done(store, record.get(store, run_id), status)
        except CoreError as exc:  # e.g. the adapter folder was moved: say so instead of staying 'running'
            _fail(store, run_id, f"training finished but the tuned model could not be registered: {exc.message}",
                  files.log_tail(run_dir, 5))
    elif held:
        pass  # alive: whatever its status says (an earlier attempt's "failed" included)
    elif current and status.get("state") == "failed":
        _fail(store, run_id, status.get("message") or "the worker failed", files.log_tail(run_dir, 20))
    else:
        tail = files.log_tail(run_dir, 20)
        _fail(store, run_id, vanished_reason(tail, record.exit_code(run["pid"])), tail)
    return record.get(store, run_id)


def _heal(store: Store, run_id: str, why: str) -> None:
    record.running(store, run_id, f"was marked failed, but {why}")


def ingest_heldout(store: Store, run_id: str, run_dir: Path) -> dict[str, Any] | None:
    """Fold heldout_scores.jsonl into the run's held-out summary (base vs tuned, and every scoring)."""
    lines = files.read_jsonl(run_dir / files.HELDOUT_SCORES)
    if not lines:
        return None
    summary = heldout_summary(lines)
    record.update(store, run_id, heldout=summary)
    return summary


def heldout_summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """{pairs, base: {accuracy, margin, ...}, tuned: {...} | None, history: [tuned scorings by step]}."""
    keep = ("step", "accuracy", "margin", "chosen_logp", "rejected_logp", "gen_len_mean", "gen_capped", "error")
    base = next((ln for ln in reversed(lines) if ln.get("which") == "base"), None)
    tuned = [ln for ln in lines if ln.get("which") == "tuned"]
    by_step = {ln["step"]: ln for ln in tuned}  # a step scored again after a resume: the last one
    if base and 0 not in by_step:
        by_step[0] = base | {"step": 0}  # LoRA starts as the identity: before the first step, tuned = base
    history = [{k: ln.get(k) for k in keep} for _, ln in sorted(by_step.items())]
    final = history[-1] if history else None
    return {"pairs": (base or (tuned[-1] if tuned else {})).get("pairs"),
            "base": {k: base.get(k) for k in keep if k != "step"} if base else None,
            "tuned": final, "history": history}
def sync_all(store: Store) -> list[str]:
    """Re-attach after a restart: sync every run still marked running. Returns their ids."""
    ids = [r["id"] for r in store.rows("SELECT id FROM training_runs WHERE state = 'running'")]
    for run_id in ids:
        sync(store, run_id)
    return ids


def _fail(store: Store, run_id: str, reason: str, tail: list[str]) -> None:
    message = reason + ("\n--- last log lines ---\n" + "\n".join(tail) if tail else "")
    ckpt = files.last_checkpoint(Path(record.get(store, run_id)["run_dir"]))
    hint = f"resume continues from {ckpt.name}" if ckpt else "no checkpoint yet: resume starts over"
    record.ended(store, run_id, "failed", message, run_message=f"{reason} ({hint})")


def adapter_model_name(base: str, run_id: str) -> str:
    stem = _SAFE.sub("-", Path(base).name if "/" in base and Path(base).exists() else base).strip("-") or "model"
    return f"{stem[:60]}-orpo-{run_id.removeprefix('train-')}"


def _finish_done(store: Store, run: dict[str, Any], status: dict[str, Any]) -> None:
    """Register the adapter as a local model (base + adapter) and close the run with its summary."""
    from core import models

    run_dir = Path(run["run_dir"])
    spec = files.read_json(run_dir / files.CONFIG) or {}
    base = spec.get("base") or {}
    name = adapter_model_name(base.get("name") or run["base_model"], run["id"])
    adapter = Path(status.get("adapter") or run_dir / files.ADAPTER)
    params = dict(base.get("params") or {})
    template = run.get("template") or {}
    if template.get("thinking") is not None:
        params["thinking"] = template["thinking"]  # the tuned model answers as it was trained
    models.add_model(store, name, "local", base.get("model_id") or base.get("folder"), params=params,
                     adapter=str(adapter), replace=True,
                     description=f"ORPO on {run['set_name']} (training run {run['id']}), base {base.get('name')}")
    summary = {"run": run["id"], "state": "done", "backend": status.get("backend") or run["backend"],
               "steps": status.get("step"), "epochs": status.get("epoch"),
               "seconds": status.get("seconds_total"), "final": status.get("final") or {},
               "adapter_model": name, "set": run["set_name"], "base": run["base_model"],
               "precision": status.get("precision"), "template": template,
               "pairs": (run.get("preflight") or {}).get("train_pairs", (run.get("preflight") or {}).get("kept")),
               "heldout": heldout_public(run.get("heldout")), "adapter_dir": str(adapter)}
    record.ended(store, run["id"], "done", summary=summary, adapter_model=name)


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """The `train start --wait --json` shape, for any state."""
    s = run.get("summary") or {}
    progress = run.get("progress") or {}
    last = progress.get("last") or {}
    final = s.get("final") or {k.replace("/", "_"): last[v] for k, v in KEYS.items() if last.get(v) is not None}
    out = {"run": run["id"], "state": run["state"], "backend": s.get("backend") or run.get("backend"),
           "steps": s.get("steps", progress.get("step")), "epochs": s.get("epochs", progress.get("epoch")),
           "seconds": s.get("seconds", progress.get("seconds_total")), "final": final,
           "adapter_model": run.get("adapter_model"), "heldout": heldout_public(run.get("heldout"))}
    if run["state"] in ("failed", "cancelled"):
        out["reason"] = (run.get("message") or "").partition("\n--- last log lines ---\n")[0] or None
    return out


def heldout_public(h: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `heldout` key of --json: {pairs, base: {accuracy, margin}, tuned: {accuracy, margin}}."""
    if not h:
        return None

    def two(x: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"accuracy": x.get("accuracy"), "margin": x.get("margin")} if x else None

    return {"pairs": h.get("pairs"), "base": two(h.get("base")), "tuned": two(h.get("tuned"))}


def wait(store: Store, run_id: str, poll_s: float = 0.5, on_progress: Callable[[dict[str, Any]], None] | None = None,
         stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Sync until the run leaves 'running' (or stop() says so); returns the run."""
    while True:
        run = sync(store, run_id)
        if on_progress:
            on_progress(run)
        if run["state"] != "running" or (stop and stop()):
            return run
        time.sleep(poll_s)


def list_runs(store: Store) -> list[dict[str, Any]]:
    sync_all(store)
    out = []
    for r in store.rows("SELECT id FROM training_runs ORDER BY created_at DESC"):
        run = record.get(store, r["id"])
        out.append(summary(run) | {"set": run["set_name"], "base": run["base_model"],
                                   "created_at": str(run["created_at"]), "message": run["message"]})
    return out


def metrics(store: Store, run_id: str) -> list[dict[str, Any]]:
    rows = store.rows(f"SELECT step, {', '.join(COLUMNS)} FROM training_metrics WHERE run_id = ? ORDER BY step", [run_id])
    return [{k: (None if isinstance(v, float) and math.isnan(v) and k != 'loss' else v) for k, v in r.items()} for r in rows]


def show(store: Store, run_id: str, tail: int = 20) -> dict[str, Any]:
    """Config, state, progress, metrics and the log tail of one run."""
    run = sync(store, run_id)
    progress = run.get("progress") or {}
    return {**summary(run), "set": run["set_name"], "base": run["base_model"], "config": run["config"],
            "config_hash": run["config_hash"], "code_version": run["code_version"], "template": run["template"],
            "run_dir": run["run_dir"], "pid": run["pid"], "message": run["message"],
            "progress": {k: progress.get(k) for k in ("state", "step", "max_steps", "epoch", "eta_s", "precision",
                                                       "resumed_from", "attempt")},
            "heldout_detail": run.get("heldout"),
            "preflight": {k: (run.get("preflight") or {}).get(k) for k in ("pairs", "kept", "train_pairs", "heldout_pairs",
                                                                           "dropped", "truncated",
                                                                           "gpu", "estimate", "warnings")},
            "metrics": metrics(store, run_id), "log_tail": files.log_tail(Path(run["run_dir"]), tail),
            "created_at": str(run["created_at"]), "finished_at": str(run["finished_at"] or "") or None}


def made_by_record(run: dict[str, Any]) -> dict[str, Any]:
    """The shape core.runs.made_by reads."""
    return {"id": run["id"], "step": "train", "config": run["config"], "config_hash": run["config_hash"],
            "code_version": run["code_version"]}


def template_of(store: Store, model_name: str) -> dict[str, Any] | None:
    """How a tuned model's prompts were rendered in training ({kind, thinking, prefill, hash}), if it was trained here."""
    run = lineage.training_run(store, model_name, served=False)
    return run["template"] | {"run": run["run"]} if run and run["template"] else None


def template_mismatch(store: Store, model_name: str, thinking: bool | None = None,
                      prefill: str | None = None) -> str | None:
    """A warning when a tuned model is about to be prompted unlike its training (Evaluate calls this).

    thinking / prefill: what the evaluation will use (None: the registered model's own params).
    """
    from core import models

    trained = template_of(store, model_name)
    if trained is None:
        return None
    model = models.get_model(store, model_name)
    use_thinking = thinking if thinking is not None else model.params.thinking
    use_prefill = prefill if prefill is not None else model.params.prefill
    problems = []
    if trained.get("thinking") is not None and use_thinking is not None and use_thinking != trained["thinking"]:
        problems.append(f"thinking {'on' if use_thinking else 'off'} (trained with it {'on' if trained['thinking'] else 'off'})")
    if (trained.get("prefill") or None) != (use_prefill or None):
        problems.append(f"prefill {use_prefill!r} (trained after {trained.get('prefill')!r})")
    if not problems:
        return None
    return (f"{model_name} was trained (run {trained['run']}) with a {trained['kind']} prompt; this evaluation uses "
            + ", ".join(problems) + ": scores may not reflect the training")

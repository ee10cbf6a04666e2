"""Lineage: the one reader of provenance, from a tuned model back to the pool questions it grew from.

The chain, as the tables record it (each link a column, nothing inferred):

    tuned model ─ training_runs.adapter_model ─→ training run ─ set_name ─→ frozen preference set
    preference set ─ preference_pairs.set_name ─→ its pairs ─ pair_id ─→ candidate (the reviewed pair)
    candidate ─ pool, seed_qid ─→ seed question; ─ mining_run, seed_qid ─→ mining item ─→ mining run
    seed question = a question of the pool (questions / datasets)

A model served elsewhere (registered as an OpenAI-compatible model whose model id is the adapter
model's name, as recipes register it) has the lineage of the adapter it serves. An evaluation label
that is not a model name has the lineage of the model its evaluate run used. A pair imported into a
set without a candidate id (a recipe's accumulated set) keeps its lineage when the same pair (same
prompt, chosen, rejected) was frozen in another set from review.

Plain functions over the store returning dicts (JSON-ready: `lineage ... --json` prints them), so
Review, Train, Visualise and the `lineage` CLI read provenance one way. It imports no step module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import CoreError, NotFound

if TYPE_CHECKING:
    from core.store import Store

START_CHARS = 70


def start(text: str | None, limit: int = START_CHARS) -> str:
    """The first characters of a text on one line (a question's start, for lists and hovers)."""
    s = " ".join((text or "").split())
    return s if len(s) <= limit else s[:limit - 1] + "…"


def _has(store: Store, table: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]))


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


# -- model → training run → set ---------------------------------------------------------------

def _run_row(r: dict[str, Any], served_as: str | None = None) -> dict[str, Any]:
    return {"run": r["id"], "set": r["set_name"], "set_hash": r["set_hash"], "base": r["base_model"],
            "state": r["state"], "model": r["adapter_model"], "template": _json(r.get("template")),
            "created_at": str(r["created_at"]), "served_as": served_as}


def training_run(store: Store, model: str, served: bool = True) -> dict[str, Any] | None:
    """The training run that made `model` (the newest, if several registered the same name), or None.

    served: also follow a registered model whose model id names a tuned model (a server serving it)."""
    rows = store.rows("SELECT * FROM training_runs WHERE adapter_model = ? ORDER BY created_at DESC LIMIT 1", [model])
    if rows:
        return _run_row(rows[0])
    if not served:
        return None
    rows = store.rows("SELECT t.* FROM models m JOIN training_runs t ON t.adapter_model = m.model_id "
                      "WHERE m.name = ? AND m.provider <> 'local' ORDER BY t.created_at DESC LIMIT 1", [model])
    return _run_row(rows[0], served_as=model) if rows else None


def model_of_label(store: Store, dataset: str, label: str) -> str:
    """The model behind an evaluation label: the model of the newest evaluate run that stored the
    label on the dataset, else the label itself (labels default to the model's name)."""
    rows = store.rows("SELECT config FROM runs WHERE step = 'evaluate' ORDER BY created_at DESC")
    for r in rows:
        cfg = _json(r["config"]) or {}
        if cfg.get("dataset") == dataset and (cfg.get("label") or cfg.get("model")) == label and cfg.get("model"):
            return cfg["model"]
    return label


def label_training_run(store: Store, label: str, dataset: str | None = None) -> dict[str, Any] | None:
    """The training run behind a model name or, given its dataset, an evaluation label; or None."""
    run = training_run(store, label)
    if run is None and dataset is not None:
        resolved = model_of_label(store, dataset, label)
        run = training_run(store, resolved) if resolved != label else None
    return run


def training_set(store: Store, model: str, dataset: str | None = None) -> str | None:
    """The preference set `model` was trained on (a label of `dataset` resolves to its model), or None."""
    run = label_training_run(store, model, dataset)
    return run["set"] if run else None


def runs_on_set(store: Store, name: str) -> list[dict[str, Any]]:
    """Every training run on a set (newest first), with the model each registered."""
    return [_run_row(r) for r in store.rows("SELECT * FROM training_runs WHERE set_name = ? ORDER BY created_at DESC",
                                            [name])]


# -- set → pairs ------------------------------------------------------------------------------

def preference_set(store: Store, name: str) -> dict[str, Any]:
    """A frozen set: source, hash, size, and the augment and mining runs it was frozen from."""
    rows = store.rows("SELECT * FROM preference_sets WHERE name = ?", [name])
    if not rows:
        names = [r["name"] for r in store.rows("SELECT name FROM preference_sets ORDER BY name")]
        raise NotFound(f"no preference set {name!r}", hint="sets: " + (", ".join(names) or "none yet"))
    r = rows[0]
    detail = _json(r["detail"]) or {}
    source = r["source"] or ""
    return {"name": r["name"], "source": source, "hash": r["hash"], "pairs": r["n_pairs"],
            "created_at": str(r["created_at"]), "freeze_run": detail.get("run"),
            "augment_run": detail.get("augment_run") or (source[len("review:"):] if source.startswith("review:") else None),
            "mining_run": detail.get("mining_run")}


def set_pairs(store: Store, name: str) -> list[dict[str, Any]]:
    """The set's pairs in order: idx, candidate id (None for an imported pair with no reviewed twin),
    subject, the question's start, and how the candidate was found ('recorded' or 'same pair')."""
    rows = store.rows(
        "SELECT p.idx, p.pair_id, p.subject, p.question, p.prompt, "
        "(SELECT min(o.pair_id) FROM preference_pairs o WHERE p.pair_id IS NULL AND o.pair_id IS NOT NULL "
        " AND o.set_name <> p.set_name AND o.chosen = p.chosen AND o.rejected = p.rejected "
        " AND o.prompt::VARCHAR = p.prompt::VARCHAR) AS twin "
        "FROM preference_pairs p WHERE p.set_name = ? ORDER BY p.idx", [name])
    out = []
    for r in rows:
        q = _json(r["question"]) or {}
        text = q.get("question") if q else _user_text(r["prompt"])
        cid = r["pair_id"] or r["twin"]
        out.append({"set": name, "idx": r["idx"], "pair_id": cid, "subject": r["subject"], "start": start(text),
                    "found": None if cid is None else "recorded" if r["pair_id"] else "same pair"})
    return out


def _user_text(prompt: Any) -> str:
    prompt = _json(prompt)
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else ""
    return str(prompt or "")


def sets_holding(store: Store, pair_id: str) -> list[dict[str, Any]]:
    """Every frozen set that holds a pair (by candidate id), with its position there."""
    return store.rows("SELECT set_name AS set, idx FROM preference_pairs WHERE pair_id = ? ORDER BY set_name, idx",
                      [pair_id])


# -- pair → candidate → seed, mining item, mining run ------------------------------------------

def candidates(store: Store, ids: Sequence[str | None]) -> dict[str, dict[str, Any]]:
    """Candidate id → its lineage: augment run, review status, seed (pool, qid, start), mining run,
    and the mining item's outcome. Ids that are no candidate are left out."""
    ids = list(dict.fromkeys(i for i in ids if i))
    if not ids or not _has(store, "candidates"):
        return {}
    rows = store.rows(
        "SELECT c.id, c.run_id, c.mining_run, c.pool, c.seed_qid, c.status, c.subject, c.question, "
        "q.question AS seed_question, q.subject AS seed_subject, "
        "i.outcome, i.kept, i.teacher_correct, i.student_wrong, i.golden_key, i.failed_key "
        "FROM candidates c LEFT JOIN questions q ON q.dataset = c.pool AND q.qid = c.seed_qid "
        "LEFT JOIN mining_items i ON i.run_id = c.mining_run AND i.qid = c.seed_qid "
        "WHERE c.id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    out = {}
    for r in rows:
        item = None if r["outcome"] is None else {
            "outcome": r["outcome"], "kept": r["kept"], "teacher_correct": r["teacher_correct"],
            "student_wrong": r["student_wrong"], "golden_key": r["golden_key"], "failed_key": r["failed_key"]}
        out[r["id"]] = {"pair_id": r["id"], "augment_run": r["run_id"], "status": r["status"],
                        "subject": r["subject"], "start": start(r["question"]),
                        "seed": {"pool": r["pool"], "qid": r["seed_qid"], "start": start(r["seed_question"]),
                                 "subject": r["seed_subject"]},
                        "mining_run": r["mining_run"], "mining_item": item}
    return out


def seed_question(store: Store, pool: str, qid: str) -> dict[str, Any] | None:
    """A pool question as the exam shows it (its passage as `paragraph`), or None."""
    rows = store.rows("SELECT q.*, p.text AS paragraph FROM questions q LEFT JOIN passages p "
                      "ON p.dataset = q.dataset AND p.passage_id = q.passage_id WHERE q.dataset = ? AND q.qid = ?",
                      [pool, qid])
    return (rows[0] | {"choices": list(rows[0]["choices"] or [])}) if rows else None


def mining_run(store: Store, run_id: str | None) -> dict[str, Any] | None:
    rows = store.rows("SELECT m.id, m.pool, m.teacher, m.student, r.state, r.created_at FROM mining_runs m "
                      "JOIN runs r ON r.id = m.id WHERE m.id = ?", [run_id])
    return rows[0] if rows else None


def mining_item(store: Store, run_id: str | None, qid: str | None) -> dict[str, Any] | None:
    rows = store.rows("SELECT * FROM mining_items WHERE run_id = ? AND qid = ?", [run_id, qid])
    return rows[0] if rows else None


# -- the walks the CLI and pages show -----------------------------------------------------------

def _mining_runs(store: Store, ids: Sequence[str | None]) -> list[dict[str, Any]]:
    out = []
    for rid in dict.fromkeys(i for i in ids if i):
        r = mining_run(store, rid)
        out.append({"run": rid, "pool": r["pool"], "teacher": r["teacher"], "student": r["student"],
                    "state": r["state"], "created_at": str(r["created_at"])} if r else {"run": rid, "missing": True})
    return out


def of_set(store: Store, name: str) -> dict[str, Any]:
    """A set walked back: its pairs, each with its candidate, seed and mining item; the mining runs
    and pool questions they came from; the training runs on it."""
    s = preference_set(store, name)
    pairs = set_pairs(store, name)
    cands = candidates(store, [p["pair_id"] for p in pairs])
    walked = [p | {"candidate": cands.get(p["pair_id"] or "")} for p in pairs]
    seeds = {(c["seed"]["pool"], c["seed"]["qid"]) for c in cands.values()}
    return {"set": s, "pairs": walked,
            "traced": sum(1 for p in walked if p["candidate"]), "untraced": sum(1 for p in walked if not p["candidate"]),
            "seeds": [{"pool": pool, "qid": qid} for pool, qid in sorted(seeds, key=lambda x: (x[0], len(x[1]), x[1]))],
            "mining_runs": _mining_runs(store, [c["mining_run"] for c in cands.values()] + [s["mining_run"]]),
            "augment_runs": [r for r in dict.fromkeys([*(c["augment_run"] for c in cands.values()), s["augment_run"]])
                             if r],
            "training_runs": runs_on_set(store, name)}


def of_model(store: Store, model: str) -> dict[str, Any]:
    """A tuned model walked back to its pool questions: model → training run → set → pairs → seeds →
    mining runs. A model with no training run here is a clear error."""
    run = training_run(store, model)
    if run is None:
        known = [r["adapter_model"] for r in store.rows(
            "SELECT adapter_model FROM training_runs WHERE adapter_model IS NOT NULL ORDER BY created_at DESC")]
        raise NotFound(f"{model!r} was not trained here: no training run registered it",
                       hint="tuned models: " + (", ".join(known) or "none yet"))
    return {"model": model, "training_run": run, **of_set(store, run["set"])}


def of_pair(store: Store, ref: str) -> dict[str, Any]:
    """One pair walked both ways: its candidate, seed question, mining item and run (back), the sets
    that hold it and the models trained on them (forward). `ref`: a candidate id, or SET#IDX."""
    pair_id, frozen = ref, None
    if "#" in ref:
        name, _, idx = ref.rpartition("#")
        found = [p for p in set_pairs(store, name) if str(p["idx"]) == idx]
        if not found:
            raise NotFound(f"no pair {idx!r} in set {name!r}", hint=f"it has {preference_set(store, name)['pairs']} pairs")
        frozen = found[0]
        pair_id = frozen["pair_id"]
        if pair_id is None:
            return {"ref": ref, "pair": frozen, "candidate": None, "seed": None, "mining_run": None,
                    "mining_item": None, "sets": [{"set": name, "idx": frozen["idx"]}],
                    "models": runs_on_set(store, name),
                    "note": "an imported pair: no reviewed candidate is recorded for it"}
    cand = candidates(store, [pair_id]).get(pair_id)
    if cand is None:
        raise NotFound(f"no pair {ref!r}", hint="give a candidate id (pairs list) or SET#IDX (pairs show SET)")
    sets = sets_holding(store, pair_id)
    seed = cand["seed"]
    item = mining_item(store, cand["mining_run"], seed["qid"])
    return {"ref": ref, "pair": frozen, "candidate": cand,
            "seed": seed | {"question": seed_question(store, seed["pool"], seed["qid"])},
            "mining_run": (_mining_runs(store, [cand["mining_run"]]) or [None])[0],
            "mining_item": None if item is None else {k: item[k] for k in (
                "outcome", "kept", "gold", "teacher_answers", "student_answers", "teacher_correct", "student_wrong",
                "golden_key", "failed_key")},
            "sets": sets, "models": [r for s in dict.fromkeys(x["set"] for x in sets) for r in runs_on_set(store, s)]}


def of_question(store: Store, dataset: str, qid: str) -> dict[str, Any]:
    """A pool question walked forward: the mining runs that looked at it, the candidates made from it,
    the sets that froze them and the models trained on those sets."""
    q = seed_question(store, dataset, qid)
    if q is None:
        raise NotFound(f"no question {qid!r} in {dataset!r}")
    mined = store.rows("SELECT i.run_id AS run, i.outcome, i.kept FROM mining_items i JOIN mining_runs m "
                       "ON m.id = i.run_id JOIN runs r ON r.id = m.id WHERE m.pool = ? AND i.qid = ? "
                       "ORDER BY r.created_at", [dataset, qid])
    cands = store.rows("SELECT id, run_id, mining_run, status FROM candidates WHERE pool = ? AND seed_qid = ? "
                       "ORDER BY run_id, idx, id", [dataset, qid]) if _has(store, "candidates") else []
    out_cands = []
    for c in cands:
        sets = sets_holding(store, c["id"])
        out_cands.append({"pair_id": c["id"], "augment_run": c["run_id"], "mining_run": c["mining_run"],
                          "status": c["status"], "sets": sets})
    set_names = list(dict.fromkeys(s["set"] for c in out_cands for s in c["sets"]))
    return {"dataset": dataset, "qid": str(qid), "subject": q["subject"], "start": start(q["question"]),
            "mined": mined, "candidates": out_cands, "sets": set_names,
            "models": [r for s in set_names for r in runs_on_set(store, s)]}


def require_training_set(store: Store, label: str, dataset: str | None = None, option: str = "--pairs") -> str:
    """The set a tuned model (or evaluation label) was trained on; a clear error when there is none."""
    name = training_set(store, label, dataset)
    if name is None:
        raise CoreError(f"{label!r} has no training lineage here (no training run registered it)",
                        hint=f"pass {option} SET: the preference set it was trained on")
    return name

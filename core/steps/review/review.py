"""Review: a person decides on each generated candidate (accept / edit / reject), with a full trace.

A candidate (core/migrations/m006_augment.py) *is* a preference pair while it is reviewed. Every
decision and every edit appends a row to `candidate_versions` holding the editable fields after the
action, so nothing is overwritten without a trace: `history(id)` replays it. An edit re-runs the
candidate's gates through `core.steps.augment.gates.recheck` (Augment's module); an accepted pair
whose edit breaks a gate goes back to pending. Provenance runs both ways: a pair leads to its seed
question, the mining run (golden and failed paths) and the generations that made it; a seed leads to
every pair made from it.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core import lineage
from core.answers import extract_answer
from core.errors import CoreError, NotFound
from core.steps.augment.gates import EDITABLE

if TYPE_CHECKING:
    from core.store import Store

STATUSES = ("pending", "accepted", "rejected")
GATE_FILTERS = ("passed", "failed")
DEFAULT_TARGET = 200


# -- reading ------------------------------------------------------------------------------------

def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for col in ("gates", "raw", "nearest_test"):
        if isinstance(row.get(col), str):
            try:
                row[col] = json.loads(row[col])
            except json.JSONDecodeError:
                pass
    row["choices"] = list(row.get("choices") or [])
    row["passed"] = row.get("failed_gate") is None and bool(row.get("gates"))
    return row


def fields_of(row: dict[str, Any]) -> dict[str, Any]:
    """The editable fields of a candidate row, as stored in its versions."""
    return {k: (list(row[k]) if k == "choices" and row.get(k) is not None else row.get(k)) for k in EDITABLE}


def list_pairs(store: Store, run: str | None = None, status: str | None = None, subject: str | None = None,
               gate: str | None = None, seed: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Candidates in a stable order (seed, index), filtered.

    gate: "passed" (every gate), "failed" (any), or a gate name (failed first at that gate).
    """
    if status and status not in STATUSES:
        raise CoreError(f"unknown review status {status!r}", hint="one of " + ", ".join(STATUSES))
    sql, params = "SELECT * FROM candidates WHERE 1=1", []
    for col, value in (("run_id", run), ("status", status), ("subject", subject), ("seed_qid", seed)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    if gate == "passed":
        sql += " AND failed_gate IS NULL AND gates IS NOT NULL"
    elif gate == "failed":
        sql += " AND failed_gate IS NOT NULL"
    elif gate:
        sql += " AND failed_gate = ?"
        params.append(gate)
    sql += " ORDER BY run_id, length(seed_qid), seed_qid, idx, id"  # seed 2 before seed 10 (ids are text)
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [_decode(r) for r in store.rows(sql, params)]


def get_pair(store: Store, cid: str) -> dict[str, Any]:
    rows = store.rows("SELECT * FROM candidates WHERE id = ?", [cid])
    if not rows:
        raise NotFound(f"no candidate {cid!r}", hint="list them with: python -m core review list --run RUN")
    return _decode(rows[0])


def runs(store: Store) -> list[dict[str, Any]]:
    """Augment runs that hold candidates, with their review counts (newest first)."""
    return store.rows("""SELECT run_id AS run, any_value(mining_run) AS mining_run, count(*) AS candidates,
                                count(*) FILTER (WHERE failed_gate IS NULL AND gates IS NOT NULL) AS passed,
                                count(*) FILTER (WHERE status = 'accepted') AS accepted,
                                count(*) FILTER (WHERE status = 'rejected') AS rejected,
                                count(*) FILTER (WHERE status = 'pending') AS pending,
                                max(created_at) AS created_at
                         FROM candidates GROUP BY run_id ORDER BY max(created_at) DESC""")


def counts(store: Store, run: str | None = None, target: int = DEFAULT_TARGET) -> dict[str, Any]:
    """Review progress of a run (or of every run): per status, passing, and accepted against a target."""
    where, params = ("WHERE run_id = ?", [run]) if run else ("", [])
    row = store.rows(f"""SELECT count(*) AS total,
                               count(*) FILTER (WHERE status = 'pending') AS pending,
                               count(*) FILTER (WHERE status = 'accepted') AS accepted,
                               count(*) FILTER (WHERE status = 'rejected') AS rejected,
                               count(*) FILTER (WHERE failed_gate IS NULL AND gates IS NOT NULL) AS passed,
                               count(*) FILTER (WHERE failed_gate IS NULL AND gates IS NOT NULL
                                                AND status = 'pending') AS passing_pending
                        FROM candidates {where}""", params)[0]
    row["target"] = target
    row["to_target"] = max(target - row["accepted"], 0)
    return row


def facets(store: Store, run: str | None = None) -> dict[str, list[str]]:
    """Values the filters can take: subjects, seeds and failed gates present in the run."""
    where, params = ("WHERE run_id = ?", [run]) if run else ("", [])

    def col(name: str) -> list[str]:
        return [r["v"] for r in store.rows(f"SELECT DISTINCT {name} AS v FROM candidates {where} "
                                           f"{'AND' if where else 'WHERE'} {name} IS NOT NULL ORDER BY v", params)]

    return {"subject": col("subject"), "seed": col("seed_qid"), "failed_gate": col("failed_gate")}


def history(store: Store, cid: str) -> list[dict[str, Any]]:
    """Every recorded version of a candidate, oldest first (fields after each action)."""
    get_pair(store, cid)
    rows = store.rows("SELECT * FROM candidate_versions WHERE candidate_id = ? ORDER BY version, changed_at", [cid])
    for r in rows:
        r["fields"] = json.loads(r["fields"]) if isinstance(r["fields"], str) else r["fields"]
    return rows


# -- writing ------------------------------------------------------------------------------------

def _ensure_created(store: Store, row: dict[str, Any]) -> int:
    """The latest recorded version, first recording the as-created fields if Augment did not."""
    cid = row["id"]
    latest = store.scalar("SELECT max(version) FROM candidate_versions WHERE candidate_id = ?", [cid])
    if latest is None:
        store.execute("INSERT INTO candidate_versions (candidate_id, version, action, fields, reason) "
                      "VALUES (?, 1, 'created', ?, NULL)", [cid, json.dumps(fields_of(row), ensure_ascii=False)])
        latest = 1
    return latest


def _record(store: Store, row: dict[str, Any], action: str, reason: str | None) -> int:
    """Append a version holding the row's fields after `action`; returns its number."""
    cid = row["id"]
    latest = _ensure_created(store, row)
    version = max(latest, row.get("version") or 1) + 1
    store.execute("INSERT INTO candidate_versions (candidate_id, version, action, fields, reason) VALUES (?, ?, ?, ?, ?)",
                  [cid, version, action, json.dumps(fields_of(row), ensure_ascii=False), reason])
    return version


ACTIONS = {"accepted": "accepted", "rejected": "rejected", "pending": "reset"}


def _decide_many(store: Store, ids: list[str], status: str, reason: str | None) -> None:
    """One decision on many candidates in one transaction (a version each)."""
    now = datetime.now()
    with store.transaction():
        for cid in ids:
            version = _record(store, get_pair(store, cid), ACTIONS[status], reason)
            store.execute("UPDATE candidates SET status = ?, review_reason = ?, reviewed_at = ?, version = ? "
                          "WHERE id = ?", [status, reason, now, version, cid])


def _decide(store: Store, cid: str, status: str, reason: str | None) -> dict[str, Any]:
    _decide_many(store, [cid], status, reason)
    return get_pair(store, cid)


def incomplete(row: dict[str, Any]) -> list[str]:
    """What a pair lacks to be trained on (a candidate whose reply failed the schema may lack anything)."""
    missing = [k for k in ("question", "chosen", "rejected") if not (row.get(k) or "").strip()]
    if len(row.get("choices") or []) < 2 or not all((c or "").strip() for c in row.get("choices") or []):
        missing.append("choices")
    if not row.get("answer"):
        missing.append("answer")
    return missing


def accept(store: Store, ids: list[str], reason: str | None = None) -> list[dict[str, Any]]:
    """Accept pairs by id (all or nothing: an unknown or incomplete pair changes nothing)."""
    if not ids:
        raise CoreError("no pair to accept", hint="give pair ids, or --run RUN --passing")
    for cid in ids:
        lacks = incomplete(get_pair(store, cid))
        if lacks:
            raise CoreError(f"cannot accept {cid}: it has no {', '.join(lacks)}",
                            hint=f"edit it first (pairs edit {cid} ...) or reject it")
    _decide_many(store, ids, "accepted", reason)
    return [get_pair(store, cid) for cid in ids]


def passing_pending(store: Store, run: str) -> list[str]:
    """Ids of a run's pending candidates that passed every gate: what bulk accept would take."""
    return [r["id"] for r in list_pairs(store, run=run, status="pending", gate="passed")]


def accept_passing(store: Store, run: str, expected: int | None = None) -> list[str]:
    """Accept every pending candidate of `run` that passed every gate; returns their ids.

    `expected` is the count the person confirmed; when the run changed since (another edit or a
    re-check), nothing is accepted and the new count is reported instead.
    """
    if not store.scalar("SELECT count(*) FROM candidates WHERE run_id = ?", [run]):
        raise NotFound(f"no candidates in run {run!r}", hint="list augment runs with: python -m core review runs")
    ids = passing_pending(store, run)
    if expected is not None and expected != len(ids):
        raise CoreError(f"{len(ids)} pairs pass now, not the {expected} confirmed", hint="confirm again")
    _decide_many(store, ids, "accepted", "bulk: passed every gate")
    return ids


def reject(store: Store, cid: str, reason: str) -> dict[str, Any]:
    reason = (reason or "").strip()
    if not reason:
        raise CoreError("a rejection needs a reason", hint="say what is wrong, e.g. --reason '정답이 둘'")
    return _decide(store, cid, "rejected", reason)


def reset(store: Store, cid: str, reason: str | None = None) -> dict[str, Any]:
    """Back to pending (the earlier decision stays in the history)."""
    return _decide(store, cid, "pending", reason)


def _clean_changes(row: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise CoreError(f"cannot edit {', '.join(unknown)}", hint="editable: " + ", ".join(EDITABLE))
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "choices":
            choices = [unicodedata.normalize("NFC", str(c)).strip() for c in (value or [])]
            if len(choices) != 5 or not all(choices):
                raise CoreError("choices must be five non-empty texts", hint=f"got {len(choices)}")
            out[key] = choices
        elif key == "answer":
            try:
                answer = int(value)
            except (TypeError, ValueError):
                raise CoreError(f"answer must be a number 1–5, not {value!r}") from None
            if not 1 <= answer <= 5:
                raise CoreError(f"answer must be 1–5, not {answer}")
            out[key] = answer
        else:
            text = unicodedata.normalize("NFC", str(value or "")).replace("\r\n", "\n").strip()
            if key in ("question", "chosen", "rejected") and not text:
                raise CoreError(f"{key} cannot be empty")
            out[key] = text or None
    return {k: v for k, v in out.items() if v != (list(row[k]) if k == "choices" and row[k] is not None else row[k])}


def recheck_gates(store: Store, cid: str) -> str | None:
    """Re-run the candidate's gates via Augment's `core.steps.augment.gates.recheck`; a note when it cannot."""
    try:
        from core.steps.augment import gates
    except ImportError:
        return "gates not re-run: core.steps.augment.gates is not installed"
    recheck = getattr(gates, "recheck", None)
    if recheck is None:
        return "gates not re-run: core.steps.augment.gates has no recheck()"
    try:
        recheck(store, cid)
    except CoreError as exc:  # the edit is stored; say why its gates are from before it
        return f"gates not re-run: {exc.message}"
    return None


def edit(store: Store, cid: str, changes: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    """Change editable fields, record the new version, re-run the gates.

    Returns the candidate after the edit with `changed` (the fields that differ) and `note` (why the
    gates could not be re-run, or that an accepted pair went back to pending). No change: no version.
    """
    row = get_pair(store, cid)
    diff = _clean_changes(row, changes)
    if not diff:
        return row | {"changed": [], "note": "nothing changed"}
    with store.transaction():
        _ensure_created(store, row)  # the fields before the first edit are never lost
        sets = ", ".join(f"{k} = ?" for k in diff)
        store.execute(f"UPDATE candidates SET {sets} WHERE id = ?", [*diff.values(), cid])
        version = _record(store, get_pair(store, cid), "edited", reason)
        store.execute("UPDATE candidates SET version = ? WHERE id = ?", [version, cid])
    note = recheck_gates(store, cid)
    after = get_pair(store, cid)
    if after["status"] == "accepted" and (note or after["failed_gate"] is not None):
        why = note or f"the edit failed the {after['failed_gate']} gate"
        after = _decide(store, cid, "pending", why)
        note = f"back to pending: {why}"
    return after | {"changed": sorted(diff), "note": note, "gates_rechecked": note is None or note.startswith("back")}


# -- provenance ---------------------------------------------------------------------------------

def _generation(store: Store, key: str | None) -> dict[str, Any] | None:
    if not key:
        return None
    rows = store.rows("SELECT cache_key, task, model, provider, model_id, prompt_hash, sample, response, answer, "
                      "input_tokens, output_tokens, created_at, error FROM generations WHERE cache_key = ?", [key])
    return rows[0] if rows else None


def provenance(store: Store, cid: str) -> dict[str, Any]:
    """Where a pair came from: seed question, mining run and item (golden/failed paths), structure,
    the blueprint generation, and the other pairs made from the same seed."""
    pair = get_pair(store, cid)
    item_row = lineage.mining_item(store, pair["mining_run"], pair["seed_qid"])
    structure = store.rows("SELECT structure, gen_key, error FROM structures WHERE run_id = ? AND seed_qid = ?",
                           [pair["run_id"], pair["seed_qid"]])
    struct = structure[0] if structure else None
    if struct and isinstance(struct["structure"], str):
        struct["structure"] = json.loads(struct["structure"])
    return {
        "pair": pair,
        "seed": lineage.seed_question(store, pair["pool"], pair["seed_qid"]),
        "mining_run": lineage.mining_run(store, pair["mining_run"]),
        "mining_item": item_row,
        "sets": lineage.sets_holding(store, cid),  # the frozen sets holding it (what training read)
        "golden": _generation(store, item_row and item_row["golden_key"]),
        "failed": _generation(store, item_row and item_row["failed_key"]),
        "structure": struct,
        "structure_generation": _generation(store, struct and struct["gen_key"]),
        "generation": _generation(store, pair.get("gen_key")),
        "siblings": [r for r in pairs_from_seed(store, pair["pool"], pair["seed_qid"]) if r["id"] != cid],
    }


def pairs_from_seed(store: Store, pool: str, qid: str) -> list[dict[str, Any]]:
    """Every candidate made from one seed question, across augment runs."""
    return [_decode(r) for r in store.rows("SELECT * FROM candidates WHERE pool = ? AND seed_qid = ? "
                                           "ORDER BY run_id, idx, id", [pool, qid])]


# -- side by side -------------------------------------------------------------------------------

def final_answer(text: str | None, n_choices: int = 5) -> int | None:
    return extract_answer(text, n_choices).answer


def diverge(chosen: str, rejected: str) -> dict[str, Any]:
    """Line-level comparison of the two reasonings (difflib) for the side-by-side view.

    Returns {"chosen": [(line, same?)...], "rejected": [...], "first": index of the first differing
    line of chosen (None if identical), "answers": (chosen's final answer, rejected's)}.
    """
    a, b = (chosen or "").splitlines(), (rejected or "").splitlines()
    same_a, same_b = [False] * len(a), [False] * len(b)
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            same_a[block.a + k] = same_b[block.b + k] = True
    first = next((i for i, s in enumerate(same_a) if not s), None)
    return {"chosen": list(zip(a, same_a)), "rejected": list(zip(b, same_b)), "first": first,
            "answers": (final_answer(chosen), final_answer(rejected))}

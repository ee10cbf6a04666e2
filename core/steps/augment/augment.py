"""Augment: turn each kept hard negative of a mining run into new questions with the same logic.

Per seed (a kept item of the mining run, with its golden and failed reasoning):
1. structure extraction: the teacher names, as JSON, the reasoning structure the question tests,
   the key steps of the golden path and the student's error pattern (table `structures`);
2. blueprint prompting: seed + golden path + failed path + structure + a transfer target → the
   teacher writes `per_seed` new questions, each with a chosen and a rejected reasoning, as JSON of
   core.steps.augment.gates.BLUEPRINT_SCHEMA (the public format documented in the README);
3. gates (core/steps/augment/gates.py), in order, cheap ones first; the teacher re-solves only what passed them;
   optionally the student re-solves what passed everything (shown, not gated).

Every model call goes through the cached engine, so a re-run of the same config (the same run:
core/runs.py) sends nothing new, and a cancelled run resumes where it stopped. Candidates are
written once every phase has finished; a candidate a reviewer has touched is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from core import embeddings, engine, generations, jobs, models, pricing, prompts, runs
from core.errors import CoreError, NotFound
from core.jobs import JobContext
from core.render import question_text
from core.runs import StepConfig
from core.steps.augment import gates
from core.steps.data import datasets

if TYPE_CHECKING:
    from core.store import Store

STRUCTURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "structure": {"type": "string", "description": "평가하는 추론 구조"},
        "golden_steps": {"type": "array", "items": {"type": "string"}, "description": "정답 풀이의 핵심 단계"},
        "error_pattern": {"type": "string", "description": "학생의 오류 유형"},
    },
    "required": ["structure", "golden_steps", "error_pattern"],
}
TEACHER_CHOOSES = "출제 위원이 직접 고름: 원래 문항과 다른 시대·분야·제재 하나를 골라 target에 적으세요"
# Output limits, thinking included (Gemini 2.5 counts thoughts against max_output_tokens): a blueprint
# holds a passage and two full reasonings.
STRUCTURE_TOKENS, BLUEPRINT_TOKENS = 4096, 16384
# Typical reply lengths before a model has any of its own (cost estimates only).
GUESS_OUTPUT = {"augment_structure": 400, "augment_blueprint": 2500, "augment_resolve": 1000}


class AugmentConfig(StepConfig):
    """One augment run's settings: the page form and the CLI options are built from these fields."""

    step: ClassVar[str] = "augment"

    mining_run: str = Field(description="mining run whose kept hard negatives are the seeds (the `run` of mine --json)")
    teacher: str = Field(description="registered model that extracts structures, writes and re-solves candidates")
    per_seed: int = Field(1, ge=1, le=20, description="candidates written per seed")
    targets: dict[str, str] = Field(default_factory=dict, description="transfer targets per subject, "
                                    "SUBJECT=target; another target (empty: the editable 'targets' list)")
    teacher_chooses: bool = Field(False, description="the teacher picks every transfer target itself")
    temperature: float | None = Field(None, ge=0, le=2, description="blueprint sampling temperature "
                                      "(None: the model's default)")
    contamination_ngram: float = Field(gates.Thresholds.contamination_ngram, ge=0, le=1, description="fail when the char-3-gram similarity to a "
                                       "test question is at least this")
    contamination_embedding: float = Field(gates.Thresholds.contamination_embedding, ge=0, le=1, description="fail when the embedding cosine to a "
                                           "test question is at least this (when an embedder is available)")
    duplicate_ngram: float = Field(gates.Thresholds.duplicate_ngram, ge=0, le=1, description="fail when the char-3-gram similarity to an "
                                   "earlier candidate or a train question is at least this")
    duplicate_embedding: float = Field(gates.Thresholds.duplicate_embedding, ge=0, le=1, description="the same, by embedding cosine "
                                       "(when an embedder is available)")
    # Off by default, unlike Visualise: a CPU embeds ~1.4 texts/s, and the n-gram gates catch copies.
    embedder: str | None = Field(None, description="sentence embedder for embedding similarity as well "
                                 f"('default': {embeddings.DEFAULT}, as Visualise; empty: char n-grams only)")
    min_korean: float = Field(gates.Thresholds.min_korean, ge=0, le=1, description="minimum share of Hangul among the letters of the "
                              "question, chosen and rejected")
    student: str | None = Field(None, description="registered model that re-solves passing candidates "
                                "(shown, not gated)")
    limit: int | None = Field(None, ge=1, description="only the first N seeds (quick trials)")


# ---- seeds ------------------------------------------------------------------------------------------


def mining_pool(store: Store, mining_run: str) -> str:
    """The pool a mining run mined (its mining_runs row, else the config of a run record of step 'mine')."""
    pool = store.scalar("SELECT pool FROM mining_runs WHERE id = ?", [mining_run])
    if pool is None:
        rows = store.rows("SELECT config FROM runs WHERE id = ? AND step IN ('mine', 'mining')", [mining_run])
        pool = (json.loads(rows[0]["config"]) or {}).get("pool") if rows else None
    if pool is None:
        raise NotFound(f"no mining run {mining_run!r}", hint="list them with: python -m core mine list")
    return pool


def seeds(store: Store, mining_run: str, limit: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(pool, the run's kept items in pool order with their question and both reasoning paths)."""
    pool = mining_pool(store, mining_run)
    rows = store.rows("""
        SELECT i.qid, i.outcome, i.gold, i.golden_key, i.failed_key, q.position,
               gg.response AS golden, fg.response AS failed, fg.answer AS student_answer
        FROM mining_items i
        JOIN questions q ON q.dataset = ? AND q.qid = i.qid
        LEFT JOIN generations gg ON gg.cache_key = i.golden_key
        LEFT JOIN generations fg ON fg.cache_key = i.failed_key
        WHERE i.run_id = ? AND i.kept ORDER BY q.position""", [pool, mining_run])
    if limit:
        rows = rows[:limit]
    qs = {q["qid"]: q for q in datasets.questions(store, pool)} if rows else {}
    for r in rows:
        r["q"] = qs[r["qid"]]
    return pool, rows


def load_targets() -> dict[str, list[str]]:
    """The editable per-subject transfer-target list (prompt 'targets': `과목: 대상` lines)."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(prompts.load("targets").parts()[1].splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        subject, _, target = (x.strip() for x in line.partition(":"))
        if not subject or not target:  # a typo would otherwise drop a subject's targets unseen
            raise prompts.PromptError(f"targets list, line {n} below ---user---: {line[:60]!r} is not "
                                      "'과목: 전이 대상'", hint="fix or delete that line (Settings page, 'targets')")
        out.setdefault(subject, []).append(target)
    return out


def targets_for(config: AugmentConfig, subject: str | None, listed: dict[str, list[str]]) -> list[str] | None:
    """The transfer targets of a subject; None: the teacher chooses."""
    if config.teacher_chooses:
        return None
    if subject in config.targets:
        return [t.strip() for t in config.targets[subject].split(";") if t.strip()] or None
    return listed.get(subject or "") or None


def candidate_id(run_id: str, seed_qid: str, idx: int) -> str:
    return "c" + hashlib.sha256(f"{run_id}\x1f{seed_qid}\x1f{idx}".encode()).hexdigest()[:15]


# ---- requests ---------------------------------------------------------------------------------------


def _json_params(model: models.Model, schema: dict, max_tokens: int,
                 temperature: float | None = None) -> dict[str, Any]:
    """Structured output where the provider supports it; the prompt asks for JSON either way."""
    params: dict[str, Any] = {"max_tokens": max(max_tokens, model.params.max_tokens or 0)}
    if model.provider != "local":
        params["json_schema"] = schema
    if temperature is not None:
        params["temperature"] = temperature
    return params


def _answer(n: Any) -> str:
    return str(n) if n is not None else "?"


def failed_label(seed: dict[str, Any]) -> str:
    """How the prompt names the student's path: a wrong answer, or (judge-kept) a right but weaker path."""
    if seed.get("outcome") == "both_correct":
        return "학생 모델의 풀이 (정답에 이르렀지만 채점자가 교사 풀이보다 못하다고 판정함)"
    return f"학생 모델의 틀린 풀이 ({_answer(seed['student_answer'])}번을 고름)"


def structure_request(pool: str, seed: dict[str, Any]) -> engine.Request:
    t = prompts.load("structure")
    messages = t.render(subject=seed["q"].get("subject") or "미상", question_block=question_text(seed["q"]),
                        gold=_answer(seed["gold"]), golden_reasoning=(seed["golden"] or "").strip(),
                        failed_label=failed_label(seed), failed_reasoning=(seed["failed"] or "").strip())
    return engine.Request(messages, t.hash, task="augment_structure", dataset=pool, qid=seed["qid"])


def blueprint_request(pool: str, seed: dict[str, Any], structure: dict[str, Any], target: str,
                      idx: int) -> engine.Request:
    t = prompts.load("blueprint")
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(structure.get("golden_steps") or [], 1))
    messages = t.render(subject=seed["q"].get("subject") or "미상", question_block=question_text(seed["q"]),
                        gold=_answer(seed["gold"]), golden_reasoning=(seed["golden"] or "").strip(),
                        failed_label=failed_label(seed), failed_reasoning=(seed["failed"] or "").strip(),
                        structure=structure.get("structure") or "", golden_steps=steps,
                        error_pattern=structure.get("error_pattern") or "", target=target, variant=idx + 1)
    return engine.Request(messages, t.hash, sample=idx, task="augment_blueprint", dataset=pool, qid=seed["qid"])


def parse_structure(row: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """(structure, None) or (None, why it cannot be used)."""
    if row is None:
        return None, "not sent (cancelled)"
    if row.get("error"):
        return None, f"request failed: {row['error']}"
    obj, why = gates.parse_object(row.get("response"))
    if obj is None:
        cut = " (cut at the token limit: raise the teacher's max_tokens)" if row.get("truncated") else ""
        return None, f"unparseable reply: {why}{cut}"
    from jsonschema import Draft202012Validator

    errs = [e.message for e in Draft202012Validator(STRUCTURE_SCHEMA).iter_errors(obj)]
    if errs:
        return None, "structure JSON: " + "; ".join(errs[:2])
    return obj, None


# ---- the run ----------------------------------------------------------------------------------------


class _Tally:
    """What the phases (structure, blueprint, re-solve, student) sent, summed, and where the next
    phase's bar starts (its progress goes through JobContext.phase)."""

    def __init__(self, ctx: JobContext, total: int):
        self.ctx, self.offset, self.total = ctx, 0, total
        self.sent = self.cached = self.input_tokens = self.output_tokens = 0

    def progress(self) -> Callable:
        return self.ctx.phase(self.offset, self.total, (self.input_tokens, self.output_tokens)).progress

    def add(self, res: engine.RunResult | None, planned: int) -> None:
        if res is not None:
            self.sent += res.progress.sent
            self.cached += res.progress.cached
            self.input_tokens += res.progress.input_tokens
            self.output_tokens += res.progress.output_tokens
        self.offset += planned


def run(store: Store, config: AugmentConfig, ctx: JobContext | None = None) -> dict[str, Any]:
    """Run the step; returns the summary (also stored on the run record). ctx carries the job's
    cancel and progress (a direct call: JobContext.local(cancel))."""
    ctx = ctx or JobContext.local()
    cancel, job_id = ctx.cancel, ctx.job_id
    teacher = models.get_model(store, config.teacher)
    if config.student:
        models.get_model(store, config.student)
    pool, seed_rows = seeds(store, config.mining_run, config.limit)
    if not seed_rows:
        raise CoreError(f"mining run {config.mining_run!r} has no kept hard negatives",
                        hint="mine a larger pool or with more samples (python -m core mine --help)")
    listed = load_targets()  # a bad targets list is refused before the run record opens
    n, per = len(seed_rows), config.per_seed
    phases = _Tally(ctx, n + 2 * n * per + (n * per if config.student else 0))

    def stopped() -> bool:
        return cancel.is_set()

    def cancelled() -> dict[str, Any]:
        summary = summarise(store, run_id, config, n) | {"requests_sent": phases.sent, "cached": phases.cached,
                                                         "state": "cancelled"}
        runs.finish_run(store, run_id, "cancelled", summary, "cancelled; run it again to resume")
        return summary

    with runs.recording(store, config, job_id) as run_id:
        # 1. structures
        reqs = [structure_request(pool, s) for s in seed_rows]
        res = engine.run(store, teacher, reqs, params=_json_params(teacher, STRUCTURE_SCHEMA, STRUCTURE_TOKENS),
                         cancel=cancel, progress=phases.progress(), job_id=job_id)
        phases.add(res, n)
        structures = {}
        for s, row in zip(seed_rows, res.rows):
            if row is not None:
                structures[s["qid"]] = (*parse_structure(row), row)
        _store_structures(store, run_id, config.mining_run, pool, structures)
        if stopped():
            return cancelled()

        # 2. blueprints
        jobs_: list[tuple[dict, int, str]] = []
        breqs = []
        for j, s in enumerate(seed_rows):
            st, _, _ = structures.get(s["qid"], (None, None, None))
            if st is None:
                continue
            options = targets_for(config, s["q"].get("subject"), listed)
            for i in range(per):
                target = options[(j + i) % len(options)] if options else TEACHER_CHOOSES
                jobs_.append((s, i, target))
                breqs.append(blueprint_request(pool, s, st, target, i))
        res = engine.run(store, teacher, breqs, params=_json_params(teacher, gates.BLUEPRINT_SCHEMA, BLUEPRINT_TOKENS,
                                                                    config.temperature),
                         cancel=cancel, progress=phases.progress(), job_id=job_id) if breqs else None
        phases.add(res, n * per)
        if stopped():
            return cancelled()
        cands, errors = [], 0
        for (s, i, target), row in zip(jobs_, res.rows if res else []):
            if row is None or row.get("error"):
                errors += row is not None
                continue
            obj, why = gates.parse_object(row["response"])
            if obj is None and row.get("truncated"):
                why = f"reply cut at the token limit ({why}): raise the teacher's max_tokens"
            chosen_target = target
            if target == TEACHER_CHOOSES:
                chosen_target = str((obj or {}).get("target") or "출제 위원 선택")
            cands.append({"id": candidate_id(run_id, s["qid"], i), "seed": s, "idx": i, "target": chosen_target,
                          "obj": obj, "parse_error": None if obj is not None else why, "gen_key": row["cache_key"],
                          "raw": obj if obj is not None else {"_reply": row["response"]}, "student_solved": None})

        # 3. cheap gates, then the paid re-solve of what passed them
        refs = gates.References.build(store, [pool], config.embedder)
        gates.cheap_gates(cands, refs, gates.Thresholds.of(config))
        res = gates.resolve(store, cands, config.teacher, cancel=cancel, progress=phases.progress(), job_id=job_id)
        phases.add(res, n * per)
        if stopped():
            return cancelled()
        if config.student:
            res = gates.student_solve(store, cands, config.student, cancel=cancel, progress=phases.progress(),
                                      job_id=job_id)
            phases.add(res, n * per)
            if stopped():
                return cancelled()
        _store_candidates(store, run_id, config.mining_run, pool, cands)
    summary = summarise(store, run_id, config, n) | {
        "requests_sent": phases.sent, "cached": phases.cached, "state": "done",
        "structures_failed": sum(v[0] is None for v in structures.values()), "errors": errors,
        "input_tokens": phases.input_tokens, "output_tokens": phases.output_tokens,
        "est_cost_usd": pricing.cost_usd(teacher, phases.input_tokens, phases.output_tokens)}
    runs.finish_run(store, run_id, "done", summary)
    return summary


def _store_structures(store: Store, run_id: str, mining_run: str, pool: str,
                      structures: dict[str, tuple[dict | None, str | None, dict]]) -> None:
    with store.transaction():
        for qid, (st, err, row) in structures.items():
            store.execute("DELETE FROM structures WHERE run_id = ? AND seed_qid = ?", [run_id, qid])
            store.execute("INSERT INTO structures VALUES (?, ?, ?, ?, ?, ?, ?)",
                          [run_id, mining_run, pool, qid, json.dumps(st, ensure_ascii=False) if st else None,
                           row["cache_key"], err])


_GENERATED = ("target", "subject", "passage", "question", "extra", "choices", "answer", "chosen", "rejected", "raw",
              "gen_key", "gates", "failed_gate", "nearest_test", "student_solved")


def _values(c: dict[str, Any]) -> dict[str, Any]:
    f = c["fields"] or {}
    return {"target": c["target"], "subject": c["seed"]["q"].get("subject"), "passage": f.get("passage"),
            "question": f.get("question"), "extra": f.get("extra"), "choices": f.get("choices"),
            "answer": f.get("answer"), "chosen": f.get("chosen"), "rejected": f.get("rejected"),
            "raw": json.dumps(c["raw"], ensure_ascii=False), "gen_key": c["gen_key"],
            "gates": json.dumps(c["gates"], ensure_ascii=False), "failed_gate": c["failed_gate"],
            "nearest_test": json.dumps(c["nearest_test"], ensure_ascii=False) if c["nearest_test"] else None,
            "student_solved": c["student_solved"]}


def version_fields(v: dict[str, Any]) -> str:
    """The editable fields as stored in candidate_versions.fields."""
    return json.dumps({k: v[k] for k in ("passage", "question", "extra", "choices", "answer", "chosen", "rejected")},
                      ensure_ascii=False)


def _store_candidates(store: Store, run_id: str, mining_run: str, pool: str, cands: list[dict[str, Any]]) -> None:
    """Insert new candidates; refresh untouched ones; never overwrite one a reviewer decided or edited."""
    existing = {r["id"]: r for r in store.rows("SELECT id, status, version FROM candidates WHERE run_id = ?",
                                                [run_id])}
    with store.transaction():
        for c in cands:
            v = _values(c)
            old = existing.get(c["id"])
            if old is None:
                cols = ("id", "run_id", "mining_run", "pool", "seed_qid", "idx", *_GENERATED)
                store.execute(f"INSERT INTO candidates ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              [c["id"], run_id, mining_run, pool, c["seed"]["qid"], c["idx"], *v.values()])
            elif old["status"] == "pending" and old["version"] == 1:
                store.execute(f"UPDATE candidates SET {', '.join(f'{k} = ?' for k in _GENERATED)} WHERE id = ?",
                              [*v.values(), c["id"]])
                store.execute("DELETE FROM candidate_versions WHERE candidate_id = ? AND version = 1 "
                              "AND action = 'created'", [c["id"]])
            else:
                continue
            store.execute("INSERT INTO candidate_versions (candidate_id, version, action, fields, reason) "
                          "VALUES (?, 1, 'created', ?, ?)", [c["id"], version_fields(v), f"augment run {run_id}"])


def summarise(store: Store, run_id: str, config: AugmentConfig | None = None, n_seeds: int | None = None) -> dict[str, Any]:
    """The run's counts from the stored candidates (edits and rechecks included)."""
    run = runs.get_run(store, run_id, "augment")
    cfg = config.model_dump() if config else (run["config"] or {})
    if n_seeds is None:
        n_seeds = (run.get("summary") or {}).get("seeds")
    failed = {g: 0 for g in gates.GATES}
    for r in store.rows("SELECT failed_gate, count(*) AS n FROM candidates WHERE run_id = ? AND failed_gate "
                        "IS NOT NULL GROUP BY failed_gate", [run_id]):
        failed[r["failed_gate"]] = r["n"]
    total = store.scalar("SELECT count(*) FROM candidates WHERE run_id = ?", [run_id])
    return {"run": run_id, "mining_run": cfg.get("mining_run"), "seeds": n_seeds, "candidates": total,
            "passed": total - sum(failed.values()), "failed": failed,
            "student_solved": store.scalar("SELECT count(*) FROM candidates WHERE run_id = ? AND student_solved",
                                           [run_id])}


# ---- before and around a run ------------------------------------------------------------------------


def estimate(store: Store, config: AugmentConfig) -> dict[str, Any]:
    """What a run would send and roughly cost (an upper bound: every candidate re-solved)."""
    teacher = models.get_model(store, config.teacher)
    pool, seed_rows = seeds(store, config.mining_run, config.limit)
    n, per = len(seed_rows), config.per_seed
    plan = engine.plan(store, teacher, [structure_request(pool, s) for s in seed_rows],
                       _json_params(teacher, STRUCTURE_SCHEMA, STRUCTURE_TOKENS))
    prior = next((r for r in runs.list_runs(store, "augment") if r["config_hash"] == config.digest()), None)
    stored = store.scalar("SELECT count(*) FROM candidates WHERE run_id = ?", [prior["id"]]) if prior else 0
    new = max(0, n * per - stored)
    per_seed_in = plan["input_tokens"] / max(plan["to_send"], 1) if plan["to_send"] else \
        sum(pricing.estimate_tokens(question_text(s["q"]) + (s["golden"] or "") + (s["failed"] or "")) for s in seed_rows) / max(n, 1)

    def out(task: str) -> float:
        return generations.mean_output_tokens(store, teacher.name, task) or GUESS_OUTPUT[task]

    in_tokens = plan["input_tokens"] + new * (per_seed_in + 600) + new * 900
    out_tokens = plan["to_send"] * out("augment_structure") + new * (out("augment_blueprint") + out("augment_resolve"))
    return {"seeds": n, "structure_requests": plan["to_send"], "structures_cached": plan["cached"],
            "blueprint_requests": new, "resolve_requests_max": new,
            "student_requests_max": new if config.student else 0,
            "requests_max": plan["to_send"] + new * (2 + bool(config.student)),
            "input_tokens": int(in_tokens), "output_tokens": int(out_tokens),
            "est_cost_usd": pricing.cost_usd(teacher, in_tokens, out_tokens)}


def start_job(store: Store, config: AugmentConfig) -> str:
    """Augment as a background job (progress, cost so far, cancel; a re-run resumes from the cache)."""
    teacher = models.get_model(store, config.teacher)
    load_targets()  # refused here, before a job exists
    est = estimate(store, config)
    n = est["seeds"] * (1 + config.per_seed * (2 + bool(config.student)))
    return jobs.start(store, "augment", f"augment {config.mining_run}: {config.teacher} ×{config.per_seed}",
                      lambda ctx: run(store, config, ctx),
                      params=config.model_dump(), total=n, est_cost_usd=est["est_cost_usd"],
                      cost=lambda i, o: pricing.cost_usd(teacher, i, o))


def list_runs(store: Store) -> list[dict[str, Any]]:
    out = []
    for r in runs.list_runs(store, "augment"):
        s = r["summary"] or {}
        if not s:  # killed or failed before its summary: count what the store holds so far
            s = summarise(store, r["id"]) | {
                "seeds": store.scalar("SELECT count(*) FROM structures WHERE run_id = ?", [r["id"]])}
        out.append({"run": r["id"], "mining_run": (r["config"] or {}).get("mining_run"),
                    "teacher": (r["config"] or {}).get("teacher"), "state": r["state"],
                    "seeds": s.get("seeds"), "candidates": s.get("candidates"), "passed": s.get("passed"),
                    "failed": s.get("failed"), "config_hash": r["config_hash"], "created_at": str(r["created_at"])})
    return out


def candidates(store: Store, run_id: str, failed_gate: str | None = None, passed: bool | None = None,
               seed_qid: str | None = None) -> list[dict[str, Any]]:
    """A run's candidates in seed order, JSON columns decoded."""
    sql = ("SELECT c.*, coalesce(q.position, 0) AS pos FROM candidates c LEFT JOIN questions q "
           "ON q.dataset = c.pool AND q.qid = c.seed_qid WHERE c.run_id = ?")
    params: list[Any] = [run_id]
    if failed_gate:
        sql += " AND c.failed_gate = ?"
        params.append(failed_gate)
    if passed is not None:
        sql += " AND c.failed_gate IS NULL" if passed else " AND c.failed_gate IS NOT NULL"
    if seed_qid:
        sql += " AND c.seed_qid = ?"
        params.append(seed_qid)
    rows = store.rows(sql + " ORDER BY pos, c.idx", params)
    for r in rows:
        for col in ("gates", "nearest_test", "raw"):
            r[col] = json.loads(r[col]) if r.get(col) else None
        r["choices"] = list(r["choices"]) if r["choices"] is not None else None
    return rows


def structures(store: Store, run_id: str) -> list[dict[str, Any]]:
    rows = store.rows("""SELECT s.*, q.question, q.subject FROM structures s
                         LEFT JOIN questions q ON q.dataset = s.pool AND q.qid = s.seed_qid
                         WHERE s.run_id = ? ORDER BY q.position""", [run_id])
    for r in rows:
        r["structure"] = json.loads(r["structure"]) if r["structure"] else None
    return rows


def gate_rates(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Per gate, in order: how many candidates reached it, failed there (first failure), and passed it."""
    s = summarise(store, run_id)
    reached, out = s["candidates"], []
    for g in gates.GATES:
        failed = s["failed"][g]
        out.append({"gate": g, "reached": reached, "failed": failed, "passed": reached - failed,
                    "pass_rate": round((reached - failed) / reached, 4) if reached else None})
        reached -= failed
    return out


def mining_runs(store: Store) -> list[dict[str, Any]]:
    """Mining runs that have kept hard negatives (what augment can start from), newest first."""
    return store.rows("""
        SELECT i.run_id AS run, count(*) FILTER (WHERE i.kept) AS seeds, any_value(m.pool) AS pool,
               any_value(m.teacher) AS teacher, any_value(r.created_at) AS created_at
        FROM mining_items i LEFT JOIN mining_runs m ON m.id = i.run_id LEFT JOIN runs r ON r.id = i.run_id
        GROUP BY i.run_id HAVING count(*) FILTER (WHERE i.kept) > 0
        ORDER BY created_at DESC NULLS LAST, run""")


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    return runs.get_run(store, run_id, "augment")

"""Hard-negative mining: teacher and student solve a pool; keep what the teacher gets right and
the student wrong, with both reasoning paths (by generation cache key, never copied).

Outcomes per question (configurable rules, the original project's defaults):
- hard_negative: teacher ✓, student ✗ (kept)
- both_correct: kept only when an LLM judge prefers the teacher's reasoning
- both_wrong: skipped but listed (label errors, very hard items)
- student_only: teacher ✗, student ✓ (skipped)
- no_answer: the question has no gold answer and cannot be mined
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core import datasets, engine, jobs, models, prompts, solve
from core.config import CSAT_SUBJECTS, UNKNOWN_SUBJECT
from core.errors import CoreError, NotFound
from core.stats import majority_vote
from core.store import Store

OUTCOMES = ("hard_negative", "both_correct", "both_wrong", "student_only", "no_answer")
JUDGE_SCHEMA = {"type": "object", "properties": {
    "preferred": {"type": "string", "enum": ["teacher", "student", "tie"]}, "reason": {"type": "string"}},
    "required": ["preferred", "reason"]}
CLASSIFY_SCHEMA = {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]}




class MiningConfig(BaseModel):
    """One mining run's settings; the page form and the CLI flags map onto these fields."""

    model_config = ConfigDict(extra="forbid")

    pool: str = Field(description="dataset to mine (a train pool)")
    teacher: str = Field(description="registered teacher model")
    student: str = Field(description="registered student model")
    samples: int = Field(1, ge=1, le=20, description="K samples per model and question")
    rule: Literal["majority", "hard"] = Field("majority", description="majority: correctness by majority vote over K; "
                                              "hard: student counts as wrong when wrong in at least m of K")
    min_wrong: int = Field(1, ge=1, description="m for the hard rule")
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature (None: model default)")
    judge: str | None = Field(None, description="registered model that judges both-correct pairs")
    classifier: str | None = Field(None, description="registered model that labels questions without a subject")

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


def classify_subjects(store: Store, pool: str, classifier: str, cancel: threading.Event | None = None,
                      counters: dict[str, int] | None = None) -> int:
    """Label questions whose subject is unknown with one of the CSAT subjects; returns how many.

    counters: requests_sent / cached are added to it (a mining run's totals)."""
    model = models.get_model(store, classifier)
    qs = [q for q in datasets.questions(store, pool) if q["subject"] in (None, "", UNKNOWN_SUBJECT)]
    if not qs:
        return 0
    reqs = []
    for q in qs:
        messages, h = prompts.classify_messages(q, CSAT_SUBJECTS)
        reqs.append(engine.Request(messages, h, task="classify", dataset=pool, qid=q["qid"]))
    res = engine.run(store, model, reqs, params=_json_params(model, CLASSIFY_SCHEMA, 256), cancel=cancel)
    if counters is not None:
        counters["requests_sent"] += res.progress.sent
        counters["cached"] += res.progress.cached
    n = 0
    for q, row in zip(qs, res.rows):
        subject = (_json_obj(row["response"]) or {}).get("subject") if row and not row["error"] else None
        if subject in CSAT_SUBJECTS:
            store.execute("UPDATE questions SET subject = ?, subject_source = 'classifier' WHERE dataset = ? AND qid = ?",
                          [subject, pool, q["qid"]])
            n += 1
    return n


def _json_params(model: models.Model, schema: dict, max_tokens: int) -> dict[str, Any]:
    """Structured output where the provider supports it; the prompt asks for JSON either way."""
    params: dict[str, Any] = {"max_tokens": max(max_tokens, model.params.max_tokens or 0)}
    if model.provider != "local":
        params["json_schema"] = schema
    return params


_JSON = re.compile(r"\{[^{}]*\}", re.S)


def _json_obj(text: str | None) -> dict[str, Any] | None:
    """The last parseable flat JSON object in a reply (models wrap JSON in prose or fences)."""
    for raw in reversed(_JSON.findall(text or "")):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _pick(gens: list[dict[str, Any]], want_correct: bool) -> str | None:
    """A representative sample: correct for the golden path; for the failed path a wrong *answer*
    (an extracted one) before an unparsed reply, so the rejected reasoning shows a real mistake."""
    if want_correct:
        return next((g["cache_key"] for g in gens if g["correct"]), None)
    wrong = [g for g in gens if not g["correct"] and g["error"] is None]
    wrong.sort(key=lambda g: g["answer"] is None)
    return wrong[0]["cache_key"] if wrong else None


def classify_outcome(gold: int | None, teacher: list[int | None], student: list[int | None],
                     rule: str = "majority", min_wrong: int = 1) -> str:
    """The mining rule on one question's sampled answers (None = unparsed or failed: wrong)."""
    if gold is None:
        return "no_answer"

    def voted(answers: list[int | None]) -> int | None:
        # Unparsed replies vote too (as one "no answer" bloc, 0), so they count as wrong, not as abstentions.
        return majority_vote([0 if a is None else a for a in answers])["label"]

    t_ok = voted(teacher) == gold  # a tie is not a majority for the gold answer
    if rule == "hard":
        s_ok = sum(a != gold for a in student) < min_wrong
    else:
        s_ok = voted(student) == gold
    if t_ok and not s_ok:
        return "hard_negative"
    if t_ok and s_ok:
        return "both_correct"
    return "student_only" if s_ok else "both_wrong"


def mine(store: Store, config: MiningConfig, cancel: threading.Event | None = None,
         progress: Callable | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Run the whole step; every model call goes through the cached engine, so re-runs are free."""
    datasets.require(store, config.pool)
    for name in filter(None, (config.teacher, config.student, config.judge, config.classifier)):
        models.get_model(store, name)
    if config.rule == "hard" and config.min_wrong > config.samples:
        raise CoreError(f"min_wrong {config.min_wrong} exceeds samples {config.samples}",
                        hint="m must be at most K")
    run_id = uuid.uuid4().hex[:10]
    store.execute("INSERT INTO mining_runs (id, pool, teacher, student, config, config_hash, state, job_id) "
                  "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                  [run_id, config.pool, config.teacher, config.student, config.model_dump_json(), config.digest(), job_id])
    counters = {"requests_sent": 0, "cached": 0}
    n = sum(q["answer"] is not None for q in datasets.questions(store, config.pool))
    phase = {"offset": 0, "total": 2 * n * config.samples}

    def report(p: Any) -> None:
        """The engine reports per phase; the job shows one bar over teacher + student (+ judge)."""
        if progress:
            progress(done=phase["offset"] + p.done, total=max(phase["total"], phase["offset"] + p.total),
                     errors=p.errors, input_tokens=p.input_tokens, output_tokens=p.output_tokens)

    def finish(state: str, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        store.execute("UPDATE mining_runs SET state = ?, summary = ? WHERE id = ?",
                      [state, json.dumps(summary, ensure_ascii=False) if summary else None, run_id])
        return summary or {"run": run_id, "state": state}

    try:
        if config.classifier:
            classify_subjects(store, config.pool, config.classifier, cancel, counters)
        for who in (config.teacher, config.student):
            if cancel is not None and cancel.is_set():
                return finish("cancelled")
            # Questions without a gold answer cannot be mined: they are listed, never sent.
            s = solve.solve(store, config.pool, who, samples=config.samples, temperature=config.temperature,
                            cancel=cancel, progress=report, job_id=job_id, gold_only=True)
            phase["offset"] += n * config.samples
            counters["requests_sent"] += s["requests_sent"]
            counters["cached"] += s["cached"]
        if cancel is not None and cancel.is_set():
            return finish("cancelled")
        mined = _judge_outcomes(store, config, cancel, report, counters, job_id)
        if cancel is not None and cancel.is_set():
            return finish("cancelled")
    except BaseException:
        finish("failed")
        raise
    with store.transaction():
        store.execute("DELETE FROM mining_items WHERE run_id = ?", [run_id])
        store.executemany(
            "INSERT INTO mining_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, i["qid"], i["outcome"], i["kept"], i["gold"], i["teacher_answers"], i["student_answers"],
              i["teacher_correct"], i["student_wrong"], i["golden_key"], i["failed_key"], i["judge_preferred"],
              i["judge_reason"], i["judge_key"]) for i in mined])
    summary = summarise(store, run_id) | counters
    return finish("done", summary)


def _judge_outcomes(store: Store, config: MiningConfig, cancel, progress, counters, job_id) -> list[dict[str, Any]]:
    by_model = {}
    for who in (config.teacher, config.student):
        gens: dict[str, list[dict]] = {}
        for g in solve.generations_for(store, config.pool, who):
            if g["sample"] < config.samples:
                gens.setdefault(g["qid"], []).append(g)
        by_model[who] = gens
    items = []
    for q in datasets.questions(store, config.pool):
        tg, sg = by_model[config.teacher].get(q["qid"], []), by_model[config.student].get(q["qid"], [])
        t_ans = [g["answer"] if g["error"] is None else None for g in tg]
        s_ans = [g["answer"] if g["error"] is None else None for g in sg]
        outcome = classify_outcome(q["answer"], t_ans, s_ans, config.rule, config.min_wrong)
        items.append({
            "qid": q["qid"], "outcome": outcome, "kept": outcome == "hard_negative", "gold": q["answer"],
            "teacher_answers": t_ans, "student_answers": s_ans,
            "teacher_correct": sum(a == q["answer"] for a in t_ans) if q["answer"] else 0,
            "student_wrong": sum(a != q["answer"] for a in s_ans) if q["answer"] else 0,
            "golden_key": _pick(tg, True) if q["answer"] else None,
            "failed_key": _pick(sg, False) if q["answer"] else None,  # both ✗ lists the student's mistake too
            "judge_preferred": None, "judge_reason": None, "judge_key": None, "_q": q, "_sg": sg,
        })
    if config.judge:
        _judge(store, config, [i for i in items if i["outcome"] == "both_correct"], cancel, progress, counters, job_id)
    for i in items:
        i.pop("_q"), i.pop("_sg")
    return items


def _judge(store, config, both, cancel, progress, counters, job_id) -> None:
    """Both right: keep the pair only when the judge prefers the teacher's reasoning."""
    if not both:
        return
    judge = models.get_model(store, config.judge)
    texts = {r["cache_key"]: r["response"] for r in store.rows(
        "SELECT cache_key, response FROM generations WHERE cache_key IN (SELECT unnest(?::VARCHAR[]))",
        [[i["golden_key"] for i in both] + [g["cache_key"] for i in both for g in i["_sg"]]])}
    reqs = []
    for i in both:
        student_key = next((g["cache_key"] for g in i["_sg"] if g["correct"]), None)
        i["failed_key"] = student_key  # the student's (correct but weaker) path is the rejected one
        messages, h = prompts.judge_messages(i["_q"], texts.get(i["golden_key"]) or "", texts.get(student_key) or "")
        reqs.append(engine.Request(messages, h, task="judge", dataset=config.pool, qid=i["qid"]))
    res = engine.run(store, judge, reqs, params=_json_params(judge, JUDGE_SCHEMA, 1024), cancel=cancel,
                     progress=progress, job_id=job_id)
    counters["requests_sent"] += res.progress.sent
    counters["cached"] += res.progress.cached
    for i, row in zip(both, res.rows):
        if not row:
            continue
        i["judge_key"] = row["cache_key"]
        verdict = _json_obj(row["response"]) if not row["error"] else None
        preferred = (verdict or {}).get("preferred")
        if preferred in ("teacher", "student", "tie"):
            i["judge_preferred"], i["judge_reason"] = preferred, str(verdict.get("reason") or "")
        else:
            i["judge_reason"] = row["error"] or "unparseable judge output"
        i["kept"] = preferred == "teacher"


def summarise(store: Store, run_id: str) -> dict[str, Any]:
    run = get_run(store, run_id)
    counts = {o: 0 for o in OUTCOMES}
    for r in store.rows("SELECT outcome, count(*) AS n FROM mining_items WHERE run_id = ? GROUP BY outcome", [run_id]):
        counts[r["outcome"]] = r["n"]
    acc = store.rows("""SELECT avg(CASE WHEN outcome IN ('hard_negative', 'both_correct') THEN 1 ELSE 0 END) AS t,
                               avg(CASE WHEN outcome IN ('student_only', 'both_correct') THEN 1 ELSE 0 END) AS s
                        FROM mining_items WHERE run_id = ? AND outcome <> 'no_answer'""", [run_id])[0]
    return {
        "run": run_id, "pool": run["pool"], "teacher": run["teacher"], "student": run["student"],
        "questions": sum(counts.values()), "hard_negatives": counts["hard_negative"],
        "both_correct": counts["both_correct"], "both_wrong": counts["both_wrong"],
        "student_only": counts["student_only"], "no_answer": counts["no_answer"],
        "judged_kept": store.scalar("SELECT count(*) FROM mining_items WHERE run_id = ? AND outcome = 'both_correct' "
                                    "AND kept", [run_id]),
        "teacher_accuracy": acc["t"], "student_accuracy": acc["s"],
    }


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    rows = store.rows("SELECT * FROM mining_runs WHERE id = ?", [run_id])
    if not rows:
        raise NotFound(f"no mining run {run_id!r}", hint="list runs with `mine list`")
    row = rows[0]
    row["config"] = json.loads(row["config"])
    row["summary"] = json.loads(row["summary"]) if row["summary"] else None
    return row


def list_runs(store: Store) -> list[dict[str, Any]]:
    out = []
    for r in store.rows("SELECT id FROM mining_runs ORDER BY created_at DESC"):
        run = get_run(store, r["id"])
        out.append((run["summary"] or {"run": run["id"], "pool": run["pool"], "teacher": run["teacher"],
                                       "student": run["student"]}) | {"state": run["state"],
                                                                      "created_at": str(run["created_at"])})
    return out


def items(store: Store, run_id: str, outcome: str | None = None, kept: bool | None = None,
          subject: str | None = None) -> list[dict[str, Any]]:
    """Mined items with the question's subject and the texts of both reasoning paths."""
    run = get_run(store, run_id)
    sql = """SELECT i.*, q.subject, q.question, q.position,
                    gg.response AS golden_response, gg.reasoning AS golden_reasoning, gg.answer AS golden_answer,
                    fg.response AS failed_response, fg.reasoning AS failed_reasoning, fg.answer AS failed_answer
             FROM mining_items i
             LEFT JOIN questions q ON q.dataset = ? AND q.qid = i.qid
             LEFT JOIN generations gg ON gg.cache_key = i.golden_key
             LEFT JOIN generations fg ON fg.cache_key = i.failed_key
             WHERE i.run_id = ?"""
    params: list[Any] = [run["pool"], run_id]
    if outcome:
        sql += " AND i.outcome = ?"
        params.append(outcome)
    if kept is not None:
        sql += " AND i.kept = ?"
        params.append(kept)
    if subject:
        sql += " AND q.subject = ?"
        params.append(subject)
    return store.rows(sql + " ORDER BY q.position", params)


def by_subject(store: Store, run_id: str) -> list[dict[str, Any]]:
    run = get_run(store, run_id)
    return store.rows("""SELECT q.subject, i.outcome, count(*) AS n FROM mining_items i
                         JOIN questions q ON q.dataset = ? AND q.qid = i.qid
                         WHERE i.run_id = ? GROUP BY ALL ORDER BY q.subject, i.outcome""", [run["pool"], run_id])


def export_hard_negatives(store: Store, run_id: str, out: str | Path) -> int:
    """JSONL: the question, gold answer, golden (teacher) and failed (student) reasoning."""
    run = get_run(store, run_id)
    qs = {q["qid"]: q for q in datasets.questions(store, run["pool"])}
    rows = items(store, run_id, kept=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            q = qs[r["qid"]]
            f.write(json.dumps({
                "run": run_id, "pool": run["pool"], "id": r["qid"], "outcome": r["outcome"], "subject": q["subject"],
                "paragraph": q["paragraph"], "question": q["question"], "question_plus": q["extra"],
                "choices": list(q["choices"]), "answer": q["answer"], "points": q["points"],
                "teacher": run["teacher"], "student": run["student"],
                "golden": {"generation": r["golden_key"], "answer": r["golden_answer"], "reasoning": r["golden_response"]},
                "failed": {"generation": r["failed_key"], "answer": r["failed_answer"], "reasoning": r["failed_response"]},
                "student_answers": r["student_answers"], "teacher_answers": r["teacher_answers"],
                "judge": {"preferred": r["judge_preferred"], "reason": r["judge_reason"]} if r["judge_key"] else None,
            }, ensure_ascii=False) + "\n")
    return len(rows)


def start_job(store: Store, config: MiningConfig) -> str:
    """Mining as a background job (progress, cancel; a re-run resumes from the cache)."""
    n = sum(q["answer"] is not None for q in datasets.questions(store, config.pool))
    return jobs.start(store, "mine", f"mine {config.pool}: {config.teacher} vs {config.student} ×{config.samples}",
                      lambda ctx: mine(store, config, cancel=ctx.cancel, progress=ctx.progress, job_id=ctx.job_id),
                      params=config.model_dump(), total=2 * n * config.samples)

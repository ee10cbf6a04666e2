"""Hard-negative mining: teacher and student solve a pool; keep what the teacher gets right and
the student wrong, with both reasoning paths (by generation cache key, never copied).

Outcomes per question (configurable rules, the original project's defaults):
- hard_negative: teacher ✓, student ✗ (kept)
- both_correct: kept only when an LLM judge prefers the teacher's reasoning
- both_wrong: skipped but listed (label errors, very hard items)
- student_only: teacher ✗, student ✓ (skipped)
- no_answer: the question has no gold answer and cannot be mined
- error: a sample of either model failed (API error, malformed reply): no outcome, never mined,
  the reason kept; the failed requests are sent again by the next run

This module keeps the mining rule, what a run found (`mining_items`) and what only a mining run has
(`mining_runs`: pool, teacher, student, keyed by the run id; the run record itself is `runs`, through
core/runs.py, so the same config is the same run); the judge
(core/steps/mine/judge.py), the subject classifier (core/steps/mine/classify.py) and the export (core/steps/mine/mining_export.py)
live in their own modules, and stored replies are read through core/generations.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from core import generations, jobs, models
from core.errors import CoreError, NotFound
from core.jobs import JobContext
from core.runs import StepConfig, finish_run, recording
from core.stats import majority_vote
from core.steps.data import datasets
from core.steps.mine.classify import classify_subjects
from core.steps.mine.judge import judge_pairs
from core.steps.solve import solve

if TYPE_CHECKING:
    from core.store import Store

OUTCOMES = ("hard_negative", "both_correct", "both_wrong", "student_only", "no_answer", "error")




class MiningConfig(StepConfig):
    """One mining run's settings; the page form and the CLI flags are built from these fields."""

    step: ClassVar[str] = "mine"

    pool: str = Field(title="Question pool", description="dataset to mine (a train pool)")
    teacher: str = Field(title="Teacher", description="registered teacher model")
    student: str = Field(title="Student", description="registered student model")
    samples: int = Field(1, ge=1, le=20, title="Samples per model (K)", description="K samples per model and question")
    rule: Literal["majority", "hard"] = Field("majority", title="Student is wrong when", description="majority: correctness by majority vote over K; "
                                              "hard: student counts as wrong when wrong in at least m of K")
    min_wrong: int = Field(1, ge=1, title="m (hard rule)", description="m for the hard rule")
    temperature: float | None = Field(None, ge=0, le=2, title="Temperature",
                                     description="sampling temperature (None: model default)")
    judge: str | None = Field(None, title="Judge for both-✓ pairs (optional)", description="registered model that judges both-correct pairs")
    classifier: str | None = Field(None, title="Subject classifier (optional)",
                                    description="registered model that labels questions without a subject")


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


def check(store: Store, config: MiningConfig) -> int:
    """Everything that can be checked before a run: the pool, the models, m ≤ K. Returns the number
    of questions with a gold answer (what each model is asked, K times)."""
    datasets.require(store, config.pool)
    for name in filter(None, (config.teacher, config.student, config.judge, config.classifier)):
        models.get_model(store, name)
    if config.rule == "hard" and config.min_wrong > config.samples:
        raise CoreError(f"min_wrong {config.min_wrong} exceeds samples {config.samples}",
                        hint="m must be at most K")
    return sum(q["answer"] is not None for q in datasets.questions(store, config.pool))


def run(store: Store, config: MiningConfig, ctx: JobContext | None = None) -> dict[str, Any]:
    """Run the whole step; every model call goes through the cached engine, so re-runs are free.

    ctx carries cancel and progress from the job (a direct call: JobContext.local(cancel)).
    """
    ctx = ctx or JobContext.local()
    n = check(store, config)
    # The same config is the same run (core/runs.py): mining it again resumes it, its items recomputed
    # from the cache; any exception marks it failed with its reason.
    with recording(store, config, ctx.job_id) as run_id:
        store.execute("INSERT OR IGNORE INTO mining_runs (id, pool, teacher, student) VALUES (?, ?, ?, ?)",
                      [run_id, config.pool, config.teacher, config.student])
        return _mine(store, config, ctx, run_id, n)


def _mine(store: Store, config: MiningConfig, ctx: JobContext, run_id: str, n: int) -> dict[str, Any]:
    counters = {"requests_sent": 0, "cached": 0}
    total = 2 * n * config.samples  # the job shows one bar over teacher + student (+ judge)

    def finish(state: str, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        # A cancelled pass changes no item: the record keeps the summary of the items it has (if any).
        finish_run(store, run_id, state, summary or get_run(store, run_id)["summary"])
        return summary or {"run": run_id, "state": state}

    mined: list[dict[str, Any]] = []

    def solved_by(phase: int, who: str) -> Callable[[], None]:
        def run() -> None:
            # Questions without a gold answer cannot be mined: they are listed, never sent.
            s = solve.solve(store, config.pool, who, samples=config.samples, temperature=config.temperature,
                            ctx=ctx.phase(phase * n * config.samples, total), gold_only=True)
            counters["requests_sent"] += s["requests_sent"]
            counters["cached"] += s["cached"]
        return run

    phases = ([lambda: classify_subjects(store, config.pool, config.classifier, ctx, counters)]
              if config.classifier else [])
    phases += [solved_by(0, config.teacher), solved_by(1, config.student),
               lambda: mined.extend(_judge_outcomes(store, config, ctx.phase(total, total), counters))]
    # Inside a phase the engine stops sending when ctx.cancel is set; between phases, here. A cancelled
    # pass keeps the items of the run's last finished one (a later run of this config resumes it).
    for run_phase in [*phases, None]:
        if ctx.cancelled():
            return finish("cancelled")
        if run_phase:
            run_phase()
    _refuse_if_all_errored(mined)
    with store.transaction():
        store.execute("DELETE FROM mining_items WHERE run_id = ?", [run_id])
        store.executemany(
            "INSERT INTO mining_items (run_id, qid, outcome, kept, gold, teacher_answers, student_answers, "
            "teacher_correct, student_wrong, golden_key, failed_key, judge_preferred, judge_reason, judge_key, "
            "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, i["qid"], i["outcome"], i["kept"], i["gold"], i["teacher_answers"], i["student_answers"],
              i["teacher_correct"], i["student_wrong"], i["golden_key"], i["failed_key"], i["judge_preferred"],
              i["judge_reason"], i["judge_key"], i.get("error")) for i in mined])
    summary = summarise(store, run_id) | counters
    return finish("done", summary)


def _judge_outcomes(store: Store, config: MiningConfig, ctx: JobContext,
                    counters: dict[str, int]) -> list[dict[str, Any]]:
    by_model = {who: generations.by_question(store, config.pool, who, config.samples)
                for who in (config.teacher, config.student)}
    items = []
    for q in datasets.questions(store, config.pool):
        tg, sg = by_model[config.teacher].get(q["qid"], []), by_model[config.student].get(q["qid"], [])
        t_ans = [g["answer"] if g["error"] is None else None for g in tg]
        s_ans = [g["answer"] if g["error"] is None else None for g in sg]
        outcome = classify_outcome(q["answer"], t_ans, s_ans, config.rule, config.min_wrong)
        error = _sample_error(q, {config.teacher: tg, config.student: sg}, config.samples)
        if error:  # an API failure is no answer, right or wrong: no outcome, nothing mined
            outcome, tg, sg = "error", [], []
        items.append({
            "qid": q["qid"], "outcome": outcome, "kept": outcome == "hard_negative", "gold": q["answer"],
            "teacher_answers": t_ans, "student_answers": s_ans,
            "teacher_correct": sum(a == q["answer"] for a in t_ans) if q["answer"] else 0,
            "student_wrong": sum(a != q["answer"] for a in s_ans) if q["answer"] else 0,
            "golden_key": _pick(tg, True) if q["answer"] else None,
            "failed_key": _pick(sg, False) if q["answer"] else None,  # both ✗ lists the student's mistake too
            "judge_preferred": None, "judge_reason": None, "judge_key": None, "_q": q, "_sg": sg,
            "error": error,
        })
    if config.judge:
        _judge(store, config, [i for i in items if i["outcome"] == "both_correct"], ctx, counters)
    for i in items:
        i.pop("_q"), i.pop("_sg")
    return items


def _sample_error(q: dict[str, Any], gens: dict[str, list[dict[str, Any]]], samples: int) -> str | None:
    """Why a question with a gold answer has no outcome: a failed or missing sample of either model."""
    if q["answer"] is None:
        return None
    for who, gs in gens.items():
        failed = next((g for g in gs if g["error"] is not None), None)
        if failed is not None:
            return f"{who}: {failed['error']}"
        if len(gs) < samples:
            return f"{who}: {samples - len(gs)} of {samples} sample(s) missing"
    return None


def _refuse_if_all_errored(mined: list[dict[str, Any]]) -> None:
    """A run where every minable question errored has no result: it fails and says why."""
    minable = [i for i in mined if i["outcome"] != "no_answer"]
    if minable and all(i["outcome"] == "error" for i in minable):
        raise CoreError(f"every one of the {len(minable)} questions errored, so nothing was mined "
                        f"(first: {minable[0]['error']})",
                        hint="check the models (`models test NAME`); failed requests are sent again on the next run")


def _judge(store: Store, config: MiningConfig, both: list[dict[str, Any]], ctx: JobContext,
           counters: dict[str, int]) -> None:
    """Both right: keep the pair only when the judge prefers the teacher's reasoning (core/steps/mine/judge.py)."""
    pairs = []
    for i in both:
        student_key = next((g["cache_key"] for g in i["_sg"] if g["correct"]), None)
        i["failed_key"] = student_key  # the student's (correct but weaker) path is the rejected one
        pairs.append({"qid": i["qid"], "question": i["_q"], "golden_key": i["golden_key"], "student_key": student_key})
    judge_pairs(store, config.judge, config.pool, pairs, ctx, counters)
    for i, p in zip(both, pairs):
        for k in ("judge_key", "judge_preferred", "judge_reason", "kept"):
            if k in p:
                i[k] = p[k]


def summarise(store: Store, run_id: str) -> dict[str, Any]:
    run = get_run(store, run_id)
    counts = {o: 0 for o in OUTCOMES}
    for r in store.rows("SELECT outcome, count(*) AS n FROM mining_items WHERE run_id = ? GROUP BY outcome", [run_id]):
        counts[r["outcome"]] = r["n"]
    acc = store.rows("""SELECT avg(CASE WHEN outcome IN ('hard_negative', 'both_correct') THEN 1 ELSE 0 END) AS t,
                               avg(CASE WHEN outcome IN ('student_only', 'both_correct') THEN 1 ELSE 0 END) AS s
                        FROM mining_items WHERE run_id = ? AND outcome NOT IN ('no_answer', 'error')""", [run_id])[0]
    return {
        "run": run_id, "pool": run["pool"], "teacher": run["teacher"], "student": run["student"],
        "questions": sum(counts.values()), "hard_negatives": counts["hard_negative"],
        "both_correct": counts["both_correct"], "both_wrong": counts["both_wrong"],
        "student_only": counts["student_only"], "no_answer": counts["no_answer"], "errors": counts["error"],
        "error_reasons": _error_reasons(store, run_id),
        "judged_kept": store.scalar("SELECT count(*) FROM mining_items WHERE run_id = ? AND outcome = 'both_correct' "
                                    "AND kept", [run_id]),
        "teacher_accuracy": acc["t"], "student_accuracy": acc["s"],
    }


def _error_reasons(store: Store, run_id: str, top: int = 5) -> dict[str, int]:
    """The most common reasons questions errored (what to fix before the next run)."""
    return {r["error"]: r["n"] for r in store.rows(
        "SELECT error, count(*) AS n FROM mining_items WHERE run_id = ? AND outcome = 'error' "
        "GROUP BY error ORDER BY n DESC, error LIMIT ?", [run_id, top])}


_RUN = """SELECT r.id, m.pool, m.teacher, m.student, r.config, r.config_hash, r.state, r.summary, r.message,
                 r.job_id, r.code_version, r.created_at, r.finished_at
          FROM mining_runs m JOIN runs r ON r.id = m.id"""


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run record (core/runs.py) with what only mining has: pool, teacher, student."""
    rows = store.rows(_RUN + " WHERE m.id = ?", [run_id])
    if not rows:
        raise NotFound(f"no mining run {run_id!r}", hint="list runs with `mine list`")
    row = rows[0]
    row["config"] = json.loads(row["config"])
    row["summary"] = json.loads(row["summary"]) if row["summary"] else None
    return row


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Runs newest first; one left running by a process that died reads as 'interrupted'."""
    jobs.mark_interrupted(store)
    out = []
    for run in store.rows(_RUN + " ORDER BY r.created_at DESC, r.id"):
        summary = json.loads(run["summary"]) if run["summary"] else None
        out.append((summary or {"run": run["id"], "pool": run["pool"], "teacher": run["teacher"],
                                "student": run["student"]}) | {"state": run["state"],
                                                               "created_at": str(run["created_at"])})
    return out


def items(store: Store, run_id: str, outcome: str | None = None, kept: bool | None = None,
          subject: str | None = None) -> list[dict[str, Any]]:
    """Mined items with the question's subject and the texts of both reasoning paths."""
    run = get_run(store, run_id)
    sql = """SELECT i.*, q.subject, q.question, q.position
             FROM mining_items i
             LEFT JOIN questions q ON q.dataset = ? AND q.qid = i.qid
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
    rows = store.rows(sql + " ORDER BY q.position", params)
    paths = generations.by_keys(store, [r[k] for r in rows for k in ("golden_key", "failed_key")])
    for r in rows:
        for side in ("golden", "failed"):
            g = paths.get(r[f"{side}_key"]) or {}
            r[f"{side}_response"], r[f"{side}_reasoning"], r[f"{side}_answer"] = (
                g.get("response"), g.get("reasoning"), g.get("answer"))
    return rows


def by_subject(store: Store, run_id: str) -> list[dict[str, Any]]:
    run = get_run(store, run_id)
    return store.rows("""SELECT q.subject, i.outcome, count(*) AS n FROM mining_items i
                         JOIN questions q ON q.dataset = ? AND q.qid = i.qid
                         WHERE i.run_id = ? GROUP BY ALL ORDER BY q.subject, i.outcome""", [run["pool"], run_id])


def start_job(store: Store, config: MiningConfig) -> str:
    """Mining as a background job (progress, cancel; a re-run resumes from the cache). The page and
    the CLI both start it this way; what can be checked is checked before the job starts."""
    n = check(store, config)
    for name in filter(None, (config.teacher, config.student, config.judge, config.classifier)):
        problem = models.key_problem(models.get_model(store, name))
        if problem:  # refuse before any job starts: a run without its key fails every request
            raise CoreError(problem, hint="set it in the environment (or .streamlit/secrets.toml) before starting "
                                          "the dashboard or the CLI, e.g. export GEMINI_API_KEY=…")
    return jobs.start(store, "mine", f"mine {config.pool}: {config.teacher} vs {config.student} ×{config.samples}",
                      lambda ctx: run(store, config, ctx), params=config.model_dump(), total=2 * n * config.samples)


def estimates(store: Store, config: MiningConfig) -> dict[str, dict[str, Any]]:
    """Per model (teacher, student): what the run would send and cost (questions with a gold answer only)."""
    return {who: solve.estimate(store, config.pool, who, config.samples, config.temperature, gold_only=True)
            for who in dict.fromkeys((config.teacher, config.student))}


def unanswerable(store: Store, pool: str) -> int:
    """Questions of the pool without a gold answer (listed by a run, never sent)."""
    return sum(q["answer"] is None for q in datasets.questions(store, pool))

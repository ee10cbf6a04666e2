"""The LLM judge for mining's both-correct pairs (the original project's `Both_Correct_Judge`).

When teacher and student are both right, the pair is kept only when a judge model prefers the
teacher's reasoning. Verdicts are JSON ({"preferred", "reason"}) found anywhere in the reply;
anything else is 'unparseable' and the pair is not kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import answers, engine, generations, models, prompts
from core.jobs import JobContext

if TYPE_CHECKING:
    from core.store import Store

JUDGE_SCHEMA = {"type": "object", "properties": {
    "preferred": {"type": "string", "enum": ["teacher", "student", "tie"]}, "reason": {"type": "string"}},
    "required": ["preferred", "reason"]}
VERDICTS = ("teacher", "student", "tie")


def json_params(model: models.Model, schema: dict, max_tokens: int) -> dict[str, Any]:
    """Structured output where the provider supports it; the prompt asks for JSON either way."""
    params: dict[str, Any] = {"max_tokens": max(max_tokens, model.params.max_tokens or 0)}
    if model.provider != "local":
        params["json_schema"] = schema
    return params


def json_obj(text: str | None) -> dict[str, Any] | None:
    """The last parseable flat JSON object in a reply."""
    found = answers.json_objects(text)
    return found[-1] if found else None


def judge_pairs(store: Store, judge: str, pool: str, pairs: list[dict[str, Any]], ctx: JobContext,
                counters: dict[str, int]) -> None:
    """Ask `judge` about each both-correct pair; sets judge_key / judge_preferred / judge_reason / kept.

    Each pair carries `qid`, `question` (the question row), `golden_key` and `student_key` (the
    teacher's and the student's correct replies). counters: requests_sent / cached are added to it.
    """
    if not pairs:
        return
    model = models.get_model(store, judge)
    texts = generations.by_keys(store, [p["golden_key"] for p in pairs] + [p["student_key"] for p in pairs])
    reqs = []
    for p in pairs:
        messages, h = prompts.judge_messages(p["question"], (texts.get(p["golden_key"]) or {}).get("response") or "",
                                             (texts.get(p["student_key"]) or {}).get("response") or "")
        reqs.append(engine.Request(messages, h, task="judge", dataset=pool, qid=p["qid"]))
    res = engine.run(store, model, reqs, params=json_params(model, JUDGE_SCHEMA, 1024), cancel=ctx.cancel,
                     progress=ctx.progress, job_id=ctx.job_id)
    counters["requests_sent"] += res.progress.sent
    counters["cached"] += res.progress.cached
    for p, row in zip(pairs, res.rows):
        if not row:
            continue
        p["judge_key"] = row["cache_key"]
        verdict = json_obj(row["response"]) if not row["error"] else None
        preferred = (verdict or {}).get("preferred")
        if preferred in VERDICTS:
            p["judge_preferred"], p["judge_reason"] = preferred, str(verdict.get("reason") or "")
        else:
            p["judge_reason"] = row["error"] or "unparseable judge output"
        p["kept"] = preferred == "teacher"

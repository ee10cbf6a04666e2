"""The subject classifier: label questions whose subject is unknown with one of the CSAT subjects.

Mining runs it first when its config names a classifier, so per-subject counts mean something for
pools imported without a subject column. A reply naming anything outside the list changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core import engine, models, prompts
from core.config import CSAT_SUBJECTS, UNKNOWN_SUBJECT
from core.jobs import JobContext
from core.steps.data import datasets
from core.steps.mine.judge import json_obj, json_params

if TYPE_CHECKING:
    from core.store import Store

CLASSIFY_SCHEMA = {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]}


def classify_subjects(store: Store, pool: str, classifier: str, ctx: JobContext | None = None,
                      counters: dict[str, int] | None = None) -> int:
    """Label questions whose subject is unknown; returns how many got a subject.

    counters: requests_sent / cached are added to it (a mining run's totals)."""
    ctx = ctx or JobContext.local()
    model = models.get_model(store, classifier)
    qs = [q for q in datasets.questions(store, pool) if q["subject"] in (None, "", UNKNOWN_SUBJECT)]
    if not qs:
        return 0
    reqs = []
    for q in qs:
        messages, h = prompts.classify_messages(q, CSAT_SUBJECTS)
        reqs.append(engine.Request(messages, h, task="classify", dataset=pool, qid=q["qid"]))
    res = engine.run(store, model, reqs, params=json_params(model, CLASSIFY_SCHEMA, 256), cancel=ctx.cancel,
                     job_id=ctx.job_id)
    if counters is not None:
        counters["requests_sent"] += res.progress.sent
        counters["cached"] += res.progress.cached
    labels = {}
    for q, row in zip(qs, res.rows):
        subject = (json_obj(row["response"]) or {}).get("subject") if row and not row["error"] else None
        if subject in CSAT_SUBJECTS:
            labels[q["qid"]] = subject
    datasets.set_subjects(store, pool, labels, source="classifier")
    return len(labels)

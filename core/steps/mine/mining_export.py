"""Export a mining run's kept items (hard negatives and judge-kept pairs) as JSONL, both paths in full."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from core.steps.data import datasets
from core.steps.mine import mining

if TYPE_CHECKING:
    from core.store import Store


def export_hard_negatives(store: Store, run_id: str, out: str | Path) -> int:
    """JSONL: the question, gold answer, golden (teacher) and failed (student) reasoning."""
    run = mining.get_run(store, run_id)
    qs = {q["qid"]: q for q in datasets.questions(store, run["pool"])}
    rows = mining.items(store, run_id, kept=True)
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

"""KICE JSON: a list of passages {id, paragraph, type?, problems: [{question, question_plus?, choices, answer, score}]}.

Question ids are the 1-based question numbers in file order ("1" … "45"), as on the exam paper.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import ImportFailed
from core.steps.data.formats.base import (
    ROW_ERRORS,
    Parsed,
    Record,
    nfc,
    parse_answer,
    parse_choices,
    parse_points,
    row_problem,
)
from core.steps.data.formats.tabular import read_json


def parse(path: Path) -> Parsed:
    data = read_json(path)
    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
        raise ImportFailed(f"{path.name}: KICE JSON must be a list of passage objects")
    out = Parsed("kice")
    number = 0
    for pi, passage in enumerate(data, 1):
        problems = passage.get("problems")
        if not isinstance(problems, list):
            number += 1
            out.bad(f"passage {pi}", "has no 'problems' list")
            continue
        try:
            paragraph = nfc(passage.get("paragraph"))
            pid = nfc(passage.get("id")) or f"passage-{pi}"
        except ROW_ERRORS as exc:
            number += len(problems)
            out.bad(f"passage {pi}", row_problem(exc))
            continue
        for qi, problem in enumerate(problems, 1):
            number += 1
            where = f"passage {pi}, question {qi} (no. {number})"
            if not isinstance(problem, dict):
                out.bad(where, "problem is not an object")
                continue
            try:
                choices = parse_choices(problem.get("choices"))
                answer = parse_answer(problem.get("answer"))
                points = parse_points(problem.get("score"))
                out.records.append(Record(
                    qid=str(number), question=nfc(problem.get("question")) or "", choices=choices,
                    answer=answer, paragraph=paragraph, passage_id=pid,
                    extra=nfc(problem.get("question_plus")), points=points,
                    subject=nfc(problem.get("subject")) or nfc(passage.get("subject")), where=where,
                ))
            except ROW_ERRORS as exc:
                out.bad(where, row_problem(exc))
    return out

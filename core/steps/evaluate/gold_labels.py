"""Gold labels by majority vote over prediction sets (the original project labelled its test set
this way): ties stay unlabelled, Fleiss' kappa says how much the voters agree, and a vote never
overwrites an answer from the file or from a person."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ImportFailed, NotFound
from core.stats import fleiss_kappa, majority_vote
from core.steps.data import datasets
from core.steps.evaluate.predictions import list_runs

if TYPE_CHECKING:
    from core.store import Store


def vote_gold_labels(store: Store, dataset: str, voters: Sequence[str]) -> dict[str, Any]:
    """Majority over every sample of every chosen prediction label; ties stay unlabelled."""
    if not voters:
        raise ImportFailed("choose at least one set of predictions to vote with")
    have = {r["model"] for r in list_runs(store, dataset)}
    unknown = [v for v in voters if v not in have]
    if unknown:
        raise NotFound(f"no predictions {', '.join(map(repr, unknown))} on {dataset!r}",
                       hint=f"have: {', '.join(sorted(have)) or 'none'}")
    rows = store.rows(
        "SELECT model, qid, answer, votes FROM predictions WHERE dataset = ? AND list_contains(?, model)",
        [dataset, list(voters)])
    ballots: dict[str, list[int | None]] = {q["qid"]: [] for q in datasets.questions(store, dataset)}
    for r in rows:
        ballots.setdefault(r["qid"], []).extend(r["votes"] or [r["answer"]])
    results = []
    with store.transaction():
        store.execute("DELETE FROM gold_votes WHERE dataset = ?", [dataset])
        for qid, ballot in ballots.items():
            v = majority_vote(ballot)
            results.append({"qid": qid, **v})
            store.execute(
                "INSERT INTO gold_votes (dataset, qid, label, votes, voters, agreement, tie) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [dataset, qid, v["label"], json.dumps(v["votes"]), list(voters), v["agreement"], v["tie"]])
    agreed = [r for r in results if r["label"] is not None]
    kappa, kappa_items = _kappa(list(ballots.values()))
    return {
        "dataset": dataset, "voters": list(voters), "questions": len(results), "labelled": len(agreed),
        "ties": sum(r["tie"] for r in results), "no_votes": sum(r["n"] == 0 for r in results),
        "unanimous": sum(r["agreement"] == 1.0 for r in agreed),
        "mean_agreement": (sum(r["agreement"] for r in agreed) / len(agreed)) if agreed else None,
        "fleiss_kappa": kappa, "kappa_items": kappa_items,
        "disagreements": [r for r in results if r["label"] is None or r["agreement"] < 1.0],
    }


def _kappa(ballots: list[list[int | None]]) -> tuple[float | None, int]:
    """Fleiss' kappa over the items with the most common number of votes (the statistic needs equal
    counts); "no answer" is a category of its own. None when fewer than 2 votes per item."""
    sizes = Counter(len(b) for b in ballots if len(b) >= 2)
    if not sizes:
        return None, 0
    size = sizes.most_common(1)[0][0]
    rows = [[b.count(c) for c in (None, 1, 2, 3, 4, 5)] for b in ballots if len(b) == size]
    import numpy as np

    value = fleiss_kappa(np.array(rows))
    return (None if math.isnan(value) else round(value, 4)), len(rows)


def apply_gold_labels(store: Store, dataset: str, decisions: Mapping[str, int] | None = None,
                      min_agreement: float = 0.0) -> int:
    """Write voted labels (and a person's decisions, which win) as the dataset's answers.

    A vote never overwrites an answer from the file or from a person; it fills blanks and
    replaces earlier votes.
    """
    decisions = dict(decisions or {})
    voted = store.rows("SELECT qid, label, agreement FROM gold_votes WHERE dataset = ? AND label IS NOT NULL",
                       [dataset])
    n = 0
    with store.transaction():
        for r in voted:
            if r["qid"] not in decisions and r["agreement"] >= min_agreement:
                n += store.scalar(
                    "UPDATE questions SET answer = ?, answer_source = 'vote' WHERE dataset = ? AND qid = ? "
                    "AND (answer IS NULL OR answer_source = 'vote') RETURNING 1", [r["label"], dataset, r["qid"]]) or 0
        for qid, answer in decisions.items():
            store.execute("UPDATE questions SET answer = ?, answer_source = 'person' WHERE dataset = ? AND qid = ?",
                          [int(answer), dataset, qid])
            n += 1
    return n

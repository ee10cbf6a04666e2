"""One folder per recipe result, enough to reproduce and judge it: manifest.json (the recipe, every
run's config and hash, sha256 of every dataset and preference set, prompt template hashes, package
versions, the git commit, metrics per round, how near the training data sits to the test set), a
model card README.md in the Hugging Face format, the pairs (TRL JSONL and a `datasets` folder) and the
adapter folder of the result round. `push` uploads the folder with huggingface_hub.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import models, prompts, runs
from core.errors import CoreError
from core.recipe import RecipeConfig
from core.steps.augment import similarity
from core.steps.data import datasets
from core.steps.review import preference_sets

if TYPE_CHECKING:
    from core.store import Store

PACKAGES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "unsloth", "accelerate", "datasets")
CONTAMINATION = 0.5  # the augment contamination gate's default char-3-gram threshold
EMBEDDING_MEASURE = ("Visualise's map-overlap in the embedding space: AUC = cross-validated ROC AUC of a logistic "
                     "regression telling the test questions from the set's items (0.5 = indistinguishable: the set "
                     "covers the test set; 1.0 = fully separated); nn cosine = each test question's most similar "
                     "item of the set (1.0 = the same text); near duplicates = test questions with an item at or "
                     "above the threshold cosine (contamination suspects)")
SIDES = {"pool": "training pool", "seeds": "hard negatives (the seeds)", "pairs": "generated pairs"}


def default_dir(store: Store, config: RecipeConfig) -> Path:
    base = Path(store.path).resolve().parent if store.path != ":memory:" else Path.cwd()
    return base / "bundles" / config.name


def versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return {k: v for k, v in out.items() if v is not None}


def dataset_hash(store: Store, name: str) -> dict[str, Any]:
    """sha256 of a dataset's questions as stored (canonical JSON, in order) and of the imported file."""
    info = datasets.require(store, name)
    qs = datasets.questions(store, name)
    canon = json.dumps([{k: (list(q[k]) if k == "choices" else q[k]) for k in
                         ("qid", "paragraph", "question", "extra", "choices", "answer", "points", "subject")}
                        for q in qs], ensure_ascii=False, sort_keys=True, default=str)
    return {"name": name, "split": info.get("split"), "questions": len(qs), "source": info.get("source"),
            "file_sha256": info.get("sha256"), "content_sha256": hashlib.sha256(canon.encode()).hexdigest()}


def _near(texts: list[str], index: similarity.NgramIndex) -> dict[str, Any]:
    sims = [index.nearest(similarity.grams(t)) for t in texts]
    values = [s.similarity for s in sims]
    if not values:
        return {"items": 0}
    return {"items": len(values), "nearest_mean": round(statistics.fmean(values), 4),
            "nearest_median": round(statistics.median(values), 4), "nearest_max": round(max(values), 4),
            f"at_least_{CONTAMINATION}": sum(v >= CONTAMINATION for v in values),
            "_sims": sims}


def overlap(store: Store, pool: str, test: str, set_names: list[str]) -> dict[str, Any]:
    """How near the training pool and the generated pairs sit to the test set by characters: for each
    item, the char-3-gram TF-IDF cosine to its nearest test question (the measure of the augment
    contamination gate), summarised, with the nearest pairs listed. The embedding overlap (Visualise's
    map-overlap: AUC and nearest-neighbour cosines) is measured by each round (rounds[].overlap)."""
    test_qs = datasets.questions(store, test)
    index = similarity.NgramIndex([similarity.question_text(q) for q in test_qs])
    out: dict[str, Any] = {"measure": "char-3-gram TF-IDF cosine to the nearest test question",
                           "contamination_threshold": CONTAMINATION}
    pool_qs = datasets.questions(store, pool)
    out["pool_vs_test"] = _near([similarity.question_text(q) for q in pool_qs], index)
    pairs = [(name, p) for name in set_names for p in preference_sets.get_pairs(store, name) if p.get("question")]
    out["pairs_vs_test"] = _near([similarity.question_text(p["question"]) for _, p in pairs], index)
    for key, items in (("pool_vs_test", [q["qid"] for q in pool_qs]),
                       ("pairs_vs_test", [f"{n}#{p['idx']}" for n, p in pairs])):
        sims = out[key].pop("_sims", [])
        ranked = sorted(zip(items, sims), key=lambda x: -x[1].similarity)[:5]
        out[key]["closest"] = [{"item": i, "test_qid": test_qs[s.index]["qid"] if s.index >= 0 else None,
                                "similarity": s.similarity} for i, s in ranked]
    return out


def manifest(store: Store, config: RecipeConfig, summary: dict[str, Any]) -> dict[str, Any]:
    from core.steps import train as training

    rounds = summary["rounds"]
    step_runs: list[dict[str, Any]] = []
    for r in rounds:
        for step, rid in (("mine", r.get("mining_run")), ("augment", r.get("augment_run")),
                          ("evaluate", (r.get("eval") or {}).get("eval_run"))):
            if rid:
                step_runs.append(_run_record(store, step, rid))
        for side in (r.get("overlap") or {}).values():
            if side.get("run") and side["run"] not in {x["run"] for x in step_runs}:
                step_runs.append(_run_record(store, "map-overlap", side["run"]))
        own = preference_sets.get_set(store, r["pairs_set"]) if r.get("on_policy") and r.get("pairs_set") else None
        if own and (own["detail"] or {}).get("run"):
            step_runs.append(_run_record(store, "on-policy", own["detail"]["run"]))
        if r.get("train_run"):
            t = training.show(store, r["train_run"])
            step_runs.append({"step": "train", "run": t["run"], "config": t["config"], "config_hash": t["config_hash"],
                              "code_version": t["code_version"], "state": t["state"], "backend": t["backend"],
                              "steps": t["steps"], "seconds": t["seconds"], "final": t["final"]})
    base = (summary.get("base") or {}).get("eval_run")
    if base:
        step_runs.insert(0, _run_record(store, "evaluate", base))
    set_names = sorted({n for r in rounds for n in (r.get("pairs_set"), r.get("set")) if n})
    sets = []
    for name in set_names:
        s = preference_sets.get_set(store, name)
        sets.append({"name": name, "pairs": s["pairs"], "sha256": s["hash"], "source": s["source"]})
    return {
        "recipe": config.model_dump(mode="json"), "recipe_hash": config.digest(), "recipe_run": summary.get("run"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": runs.code_version(), "packages": versions(),
        "models": {n: _model(store, n) for n in dict.fromkeys(
            [config.teacher, config.student, *([config.miner] if config.miner else []),
             *[r[k] for r in rounds for k in ("adapter_model", "tuned_model") if r.get(k)]])},
        "datasets": [dataset_hash(store, n) for n in dict.fromkeys([config.pool_name(), config.test_name()])],
        "preference_sets": sets,
        "prompt_templates": {t.name: t.hash for t in prompts.list_templates()},
        "runs": step_runs,
        "rounds": rounds, "stopped": summary.get("stopped"), "result_round": summary.get("result_round"),
        "overlap": overlap(store, config.pool_name(), config.test_name(),
                           [r["pairs_set"] for r in rounds if r.get("pairs_set")]) | {
            "embedding": {"measure": EMBEDDING_MEASURE, "per_round": "rounds[].overlap: pool, seeds (the round's "
                          "hard negatives), pairs (the round's preference set), each against the test set",
                          "rounds": [{"round": r["round"], **r["overlap"]} for r in rounds if r.get("overlap")]}},
    }


def _run_record(store: Store, step: str, run_id: str) -> dict[str, Any]:
    if step == "mine":
        from core.steps.mine import mining

        r = mining.get_run(store, run_id)
    else:
        r = runs.get_run(store, run_id)
    return {"step": step, "run": run_id, "config": r["config"], "config_hash": r["config_hash"],
            "code_version": r.get("code_version"), "state": r["state"]}


def _model(store: Store, name: str) -> dict[str, Any]:
    m = models.get_model(store, name).public()
    return {k: m[k] for k in ("provider", "model_id", "base_url", "params", "adapter")}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def model_card(config: RecipeConfig, man: dict[str, Any]) -> str:
    """README.md in the Hugging Face model-card format: YAML front matter, then the facts."""
    k = man["result_round"]
    r = next(x for x in man["rounds"] if x["round"] == k)
    e = r["eval"]
    base_id = man["models"][config.student]["model_id"]
    front = ["---", f"base_model: {json.dumps(base_id)}", "library_name: peft", "language:", "- ko",
             "pipeline_tag: text-generation", "tags:", "- orpo", "- trl", "- peft", "- lora",
             "- reasoning-distillation", "- csat", "---", ""]
    lo, hi = e["ci"]
    lines = [
        f"# {config.name}: {config.student} + ORPO (round {k} of {len(man['rounds'])})", "",
        f"A LoRA adapter for `{base_id}` trained with ORPO on preference pairs written by the teacher "
        f"`{config.teacher}` from the questions the student got wrong (reasoning distillation via analogical "
        f"prompting on Korean CSAT-style questions). Made by recipe `{config.name}` (hash {man['recipe_hash']}, "
        f"code {man['git_commit']}); `manifest.json` beside this card holds every setting and hash.", "",
        "## Result", "",
        f"On `{config.test_name()}` ({e['questions']} questions): accuracy {_pct(e['base_accuracy'])} % (base) → "
        f"{_pct(e['tuned_accuracy'])} % (this adapter), {e['fixed']} fixed and {e['broken']} broken; exact McNemar "
        f"p = {e['mcnemar_p']:.3g}; 95 % passage-bootstrap CI of the difference "
        f"[{_pct(lo)}, {_pct(hi)}] %p. Per subject: Wilson 95 % CI of the tuned accuracy, McNemar p Holm-adjusted.",
        "",
        "| Subject | n | base % | tuned % (95 % CI) | Δ %p | fixed | broken | p (Holm) |",
        "|---|---|---|---|---|---|---|---|"]
    for s in e["by_subject"]:
        ci = s.get("tuned_ci") or [None, None]
        lines.append(f"| {s['subject']} | {s['questions']} | {_pct(s['base_accuracy'])} | {_pct(s['tuned_accuracy'])} "
                     f"({_pct(ci[0])}–{_pct(ci[1])}) "
                     f"| {100 * s['diff']:+.1f} | {s['fixed']} | {s['broken']} | {s['p_holm']:.3g} |")
    lines += ["", "## Rounds", "",
              "| Round | mined with | hard negatives | pairs (trained on) | accuracy % | vs previous %p | 95 % CI | McNemar p |",
              "|---|---|---|---|---|---|---|---|"]
    for x in man["rounds"]:
        ev = x.get("eval")
        if not ev:
            lines.append(f"| {x['round']} | {x['student']} | {x.get('hard_negatives')} | {x.get('pairs') or '—'} "
                         "| — | — | — | — |")
            continue
        vp = ev["vs_previous"]
        lines.append(f"| {x['round']} | {x['student']} | {x.get('hard_negatives')} | {x.get('pairs')} "
                     f"({x.get('set_pairs')}) | {_pct(ev['tuned_accuracy'])} | {100 * vp['diff']:+.1f} | "
                     f"[{_pct(vp['ci'][0])}, {_pct(vp['ci'][1])}] | {vp['mcnemar_p']:.3g} |")
    if man.get("stopped"):
        lines += ["", f"Stopped early: {man['stopped']}."]
    train = next((x for x in man["runs"] if x["step"] == "train" and x["run"] == r.get("train_run")), {})
    cfg = train.get("config") or {}
    keys = ("beta", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
            "max_steps", "max_length", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "load_in_4bit", "seed")
    lines += ["", "## Training", "",
              f"ORPO (TRL) + LoRA (PEFT), backend {train.get('backend')}, {train.get('steps')} steps: "
              + ", ".join(f"{key} {cfg.get(key)}" for key in keys if key in cfg) + ".", "",
              "## Data", "",
              f"Pool `{config.pool_name()}`, test set `{config.test_name()}`; preference set `{r.get('set')}` "
              f"({r.get('set_pairs')} pairs, sha256 {str(r.get('set_hash'))[:16]}…) in `pairs/` as TRL JSONL and a "
              "`datasets` folder. Prompts: the solve template (hashes in the manifest).", ""]
    on = [x for x in man["rounds"] if x.get("on_policy")]
    if on:
        lines += ["Rejected reasoning: on-policy — the round's student solved each accepted generated question with "
                  "the pair's own prompt and its wrong reasoning is the rejected one (the chosen one is the "
                  "teacher's); " + ("a question it solved was dropped." if config.pairs.when_right == "drop" else
                                    "a question it solved kept the teacher's rejected reasoning."), ""]
        for x in on:
            o = x["on_policy"]
            lines.append(f"- round {x['round']}: {o['student']} failed {o['failed']} of {o['questions']} questions, "
                         f"solved {o['solved']}, gave no usable reply on {o['no_reply']}; {o['kept']} pairs "
                         f"({o['fell_back']} with the teacher's rejected)")
        lines.append("")
    else:
        lines += ["Rejected reasoning: the teacher's, written with each generated question (off-policy).", ""]
    lines += ["## Overlap with the test set", ""]
    ov = man["overlap"]
    emb = [x for x in man["rounds"] if x.get("overlap")]
    if emb:
        first = next(iter(emb[0]["overlap"].values()))
        lines += [f"How near the training data sits to the test set `{config.test_name()}` in the embedding space "
                  f"(embedder `{first.get('embedder')}`; Visualise's overlap). **AUC**: a classifier telling test "
                  "questions from the set's items, cross-validated: ≈ 0.5 = indistinguishable (the set covers the "
                  "test set, as when training items are chosen for their closeness to test items), 1.0 = fully "
                  "separated. **nn cosine**: each test question's most similar item (1.0 = the same text). "
                  f"**near duplicates**: test questions with an item at cosine ≥ {first.get('threshold')} "
                  "(contamination suspects).", "",
                  "| Round | set | items | AUC | reading | nn cosine mean | median | near duplicates |",
                  "|---|---|---|---|---|---|---|---|"]
        for x in emb:
            for side, o in x["overlap"].items():
                reading = (o.get("reading") or "").split(":")[0]
                auc = "—" if o.get("auc") is None else f"{o['auc']:.2f}"
                lines.append(f"| {x['round']} | {SIDES.get(side, side)} `{o.get('train')}` | {o.get('train_items')} | "
                             f"{auc} | {reading} | "
                             f"{o.get('nn_similarity_mean')} | {o.get('nn_similarity_median')} | "
                             f"{o.get('near_duplicates')} of {o.get('test_items')} |")
        lines += ["", "By characters (the augment contamination gate's measure):", ""]
    for key, what in (("pool_vs_test", "training pool"), ("pairs_vs_test", "generated pairs")):
        o = ov[key]
        if o.get("items"):
            lines.append(f"- {what}: {o['items']} items; {ov['measure']}: mean "
                         f"{o['nearest_mean']}, median {o['nearest_median']}, max {o['nearest_max']}; "
                         f"{o[f'at_least_{CONTAMINATION}']} at or above {CONTAMINATION} (the contamination gate)")
    lines += ["", "## Limitations", "",
              f"- {e['questions']} test questions: a CI that includes 0 means this run cannot tell the adapter "
              "from the base model; per-subject n is smaller still.",
              "- The pairs are written by a model and checked by gates (and, with `review.accept = \"passing\"`, "
              "not read by a person).",
              "- Later rounds mine with the tuned model, so they can pile up the noise of earlier rounds; each "
              "round's figures above are measured, not assumed.",
              "- Overlap is measured by one small embedder and by character n-grams; paraphrased test material can "
              "sit closer than either shows."]
    return "\n".join(front + lines) + "\n"


def write(store: Store, config: RecipeConfig, summary: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write (or rewrite) the bundle of a finished recipe run; returns its folder."""
    import datasets as hf_datasets

    hf_datasets.disable_progress_bars()  # the CLI's stderr carries the recipe's own progress
    out = Path(out) if out else default_dir(store, config)
    man = manifest(store, config, summary)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "pairs").mkdir(parents=True)
    for s in man["preference_sets"]:
        preference_sets.export(store, s["name"], "trl", tmp / "pairs" / f"{s['name']}.jsonl")
        preference_sets.export(store, s["name"], "hf", tmp / "pairs" / s["name"])
    k = man["result_round"]
    tuned = next(x.get("adapter_model") or x["tuned_model"] for x in man["rounds"] if x["round"] == k)
    adapter = models.get_model(store, tuned).adapter
    if adapter and Path(adapter).is_dir():
        shutil.copytree(adapter, tmp / "adapter")
        man["adapter"] = {"model": tuned, "source": adapter, "files": sorted(p.name for p in (tmp / "adapter").iterdir())}
    (tmp / "manifest.json").write_text(json.dumps(man, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    (tmp / "README.md").write_text(model_card(config, man), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def push(folder: str | Path, repo: str, private: bool = True) -> str:
    """Upload a bundle folder to the Hugging Face Hub as a model repo; returns its URL."""
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise CoreError(f"{folder} is not a recipe bundle (no manifest.json)", hint="recipe run FILE --bundle DIR")
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                             commit_message="recipe bundle")
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo}")

"""Running a recipe: rounds of mine → augment → review → freeze → train → evaluate, headless.

Every step is an ordinary run started through its own entry point (mining.start_job,
augment.start_job, review.accept_passing, preference_sets.freeze, training.start/wait,
eval_run.start_job) and followed as the CLI follows it, so a recipe that was killed resumes where it
stopped (finished replies come from the generation cache, a training worker that kept running is
attached to) and a recipe run again finds every step done: it sends no request and trains nothing.

Round k+1 mines the pool with round k's tuned model (the adapter, through the local provider), so
its hard negatives are what the tuned student still fails. With `[pairs] rejected = "student"` the
round's student also solves every accepted generated question (the pair's own prompt, through the
cached engine) and its wrong reasoning becomes the pair's rejected one (on-policy pairs). After the
pairs are frozen, the round measures how near the pool, its hard negatives and its pairs sit to the
test set in the embedding space (mapping's map-overlap step: AUC, nearest-neighbour cosines; the
vectors come from the embedding cache, so a re-run embeds nothing). Each round is evaluated on the test set
against the base student and against the previous round (McNemar, passage bootstrap CI); the
recipe's stop rule ends the loop early when a round stops helping. The recipe's own run record
(step "recipe", table runs) holds the rounds as its summary, updated after every step.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from core import engine, jobs, models, prompts, runs
from core.errors import CoreError
from core.jobs import JobContext
from core.recipe import RecipeConfig, key_problems, warnings
from core.runs import ROOT, StepConfig
from core.steps.augment import augment, gates
from core.steps.data import datasets
from core.steps.evaluate import eval_run, evaluation
from core.steps.mine import mining
from core.steps.review import preference_sets, review
from core.steps.visualise import mapping

if TYPE_CHECKING:
    from core.store import Store

STEPS_PER_ROUND = 6  # mine, augment, review + freeze, overlap, train, evaluate
OVERLAP_SIDES = ("pool", "seeds", "pairs")  # what each round measures against the test set


class OnPolicyConfig(StepConfig):
    """A round's on-policy pairs: the accepted pairs of an augment run with the student's own failed
    reasoning as the rejected one (the run record of the set it makes)."""

    step: ClassVar[str] = "on-policy"
    name: str = Field(description="preference set made")
    augment_run: str = Field(description="augment run whose accepted pairs are re-solved by the student")
    student: str = Field(description="model whose failed reasoning becomes the rejected one")
    samples: int = Field(1, ge=1)
    temperature: float | None = None
    when_right: str = "drop"


def failed_reasoning(gold: int | None, chosen: str, rows: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The student's failed reply among its samples on a question: a wrong answer before an unparsed reply
    (as mining picks the failed path); None when every reply is right, failed or empty."""
    failed = [r for r in rows if r is not None and not r.get("error") and (r.get("response") or "").strip()
              and r.get("answer") != gold and (r.get("response") or "").strip() != (chosen or "").strip()]
    failed.sort(key=lambda r: r.get("answer") is None)
    return failed[0] if failed else None


class Stopped(Exception):
    """The recipe was cancelled: what finished is stored; the same command resumes."""


def workdir(store: Store, config: RecipeConfig) -> Path:
    base = Path(store.path).resolve().parent if store.path != ":memory:" else Path(tempfile.gettempdir())
    return base / "recipes" / config.name


class _Runner:
    def __init__(self, store: Store, config: RecipeConfig, ctx: JobContext, on_event: Callable[[str], None] | None):
        self.store, self.config, self.ctx = store, config, ctx
        self.on_event = on_event or (lambda _line: None)
        self.done, self.total = 0, 2 + STEPS_PER_ROUND * config.rounds
        self.summary: dict[str, Any] = {"recipe": config.name, "hash": config.digest(), "rounds": [],
                                        "warnings": warnings(config), "stopped": None, "requests_sent": 0}

    # ---- plumbing --------------------------------------------------------------------------------

    def event(self, line: str, step_done: bool = False) -> None:
        self.done += step_done
        self.on_event(line)
        self.ctx.progress(done=self.done, total=self.total, message=line, force=True)

    def check_cancel(self) -> None:
        if self.ctx.cancelled():
            raise Stopped

    def follow(self, job_id: str, what: str) -> dict[str, Any]:
        """Wait for a step's job as run_job does: its progress becomes the recipe's message; cancel reaches it."""
        while not jobs.wait(job_id, 0.5):
            if self.ctx.cancelled():
                jobs.cancel(job_id)
            job = jobs.get_job(self.store, job_id) or {}
            if job.get("total"):
                self.ctx.progress(done=self.done, total=self.total, message=f"{what}: {job['done'] or 0}/{job['total']}")
        job = jobs.get_job(self.store, job_id)
        if job["state"] == "failed":
            raise CoreError(f"{what} failed: {job['message']}", hint=f"details: python -m core jobs show {job_id}")
        if job["state"] == "cancelled" or self.ctx.cancelled():
            raise Stopped
        result = job["result"] or {}
        self.summary["requests_sent"] += result.get("requests_sent") or 0
        return result

    def save(self, state: str = "running") -> None:
        self.store.execute("UPDATE runs SET summary = ?, state = ? WHERE id = ?",
                           [json.dumps(self.summary, ensure_ascii=False, default=str), state, self.summary["run"]])

    # ---- steps ------------------------------------------------------------------------------------

    def prepare(self) -> None:
        c, store = self.config, self.store
        if c.data.samples:
            datasets.load_samples(store)
        for name, file, split in ((c.pool, c.data.pool_file, "train"), (c.test, c.data.test_file, "test")):
            if file and not _exists(store, name):
                datasets.import_file(store, _path(file), name, split)
        for name, limit in ((c.pool, c.data.pool_limit), (c.test, c.data.test_limit)):
            if limit:
                subset(store, name, limit)
        have = {m["name"]: m for m in models.list_models(store)}
        for name, m in c.models.items():
            old = have.get(name)
            spec = {"provider": m.provider, "model_id": m.model, "base_url": m.base_url,
                    "params": models.parse_params(m.params).model_dump(exclude_unset=True)}
            if old is None or {k: old[k] for k in spec} != spec:  # the recipe says how its models are reached
                models.add_model(store, name, m.provider, m.model, base_url=m.base_url, params=m.params,
                                 replace=old is not None)
                if old is not None:
                    self.event(f"model {name} updated from the recipe (was {old['provider']} {old['model_id']} "
                               f"{old['base_url'] or ''})".rstrip())
        for name in (c.teacher, c.student, c.miner):
            if name:
                models.get_model(store, name)
        datasets.require(store, c.pool_name())
        datasets.require(store, c.test_name())
        self.event(f"ready: pool {c.pool_name()}, test {c.test_name()}, teacher {c.teacher}, student {c.student}",
                   step_done=True)

    def mine(self, student: str) -> dict[str, Any]:
        cfg = self.config.mining_config(student)
        rows = self.store.rows("SELECT summary FROM runs WHERE step = 'mine' AND config_hash = ? AND state = 'done' "
                               "ORDER BY created_at DESC LIMIT 1", [cfg.digest()])
        if rows and rows[0]["summary"]:
            return json.loads(rows[0]["summary"]) | {"reused": True}
        return self.follow(mining.start_job(self.store, cfg), f"mine {cfg.pool} ({student})")

    def augment(self, mining_run: str) -> dict[str, Any]:
        cfg = self.config.augment_config(mining_run)
        prior = _done_run(self.store, "augment", cfg.digest())
        if prior:
            return prior | {"reused": True}
        return self.follow(augment.start_job(self.store, cfg), f"augment {mining_run}")

    def pairs(self, k: int, augment_run: str, student: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """Accept (passing) and freeze the round's pairs; the set to train on. None: nothing to train on."""
        c, store = self.config, self.store
        if c.review.accept == "passing":
            review.accept_passing(store, augment_run)
        accepted = review.counts(store, augment_run)["accepted"]
        if not accepted:
            return None
        own_name, train_name = c.set_names(k)
        if c.pairs.rejected == "student":
            own = self.on_policy(own_name, augment_run, student, row)
            if own is None:
                return None
        else:
            own = preference_sets.freeze(store, own_name, augment_run, replace=True)
        if train_name == own_name:
            return {"own": own, "train": own}
        # A pair an earlier round already holds (the tuned student failed the same way) is kept once.
        records = list({json.dumps(r, ensure_ascii=False, sort_keys=True): r for j in range(1, k + 1)
                        for r in preference_sets.trl_records(store, c.set_names(j)[0])}.values())
        path = workdir(store, c) / f"{train_name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        return {"own": own, "train": preference_sets.import_pairs(store, path, train_name, replace=True)}

    def on_policy(self, name: str, augment_run: str, student: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """The round's pairs with the student's own failed reasoning as the rejected one. The student
        solves each accepted question with the pair's own prompt (the solve prompt) through the engine,
        so a re-run is served from the cache and a cancelled one resumes. A question it solves in every
        sample (or never answers) is dropped, or keeps the teacher's rejected (`[pairs] when_right`)."""
        c, store = self.config, self.store
        p = c.pairs
        accepted = review.list_pairs(store, run=augment_run, status="accepted")
        broken = [f"{x['id']} (no {', '.join(review.incomplete(x))})" for x in accepted if review.incomplete(x)]
        if broken:
            raise CoreError(f"{len(broken)} accepted pair(s) cannot be frozen: " + "; ".join(broken[:5]),
                            hint="edit them on the Review page, or put them back to pending; then run the recipe again")
        model = models.get_model(store, student)
        pairs, reqs = [], []
        for x in accepted:
            pair = preference_sets.pair_of(x)
            q = gates.as_question(x)
            messages, template_hash = prompts.solve_messages(q)
            pairs.append(pair)
            reqs += [engine.Request(messages, template_hash, sample=s, task="recipe_on_policy",
                                    qid=x["id"], n_choices=len(q["choices"])) for s in range(p.samples)]

        def progress(pr: engine.Progress) -> None:
            self.ctx.progress(done=self.done, total=self.total,
                              message=f"on-policy: {student} solves the new questions {pr.done}/{pr.total}")

        res = engine.run(store, model, reqs, params={} if p.temperature is None else {"temperature": p.temperature},
                         job_id=self.ctx.job_id, cancel=self.ctx.cancel, progress=progress)
        self.summary["requests_sent"] += res.progress.sent
        if res.cancelled or self.ctx.cancelled():
            raise Stopped
        if res.rows and all(r is not None and r.get("error") for r in res.rows):  # no result, not "nothing failed"
            raise CoreError(f"every on-policy request to {student} failed: {res.rows[0]['error']}",
                            hint="fix the model (python -m core models test NAME) and run the recipe again: "
                                 "the failed requests are sent again")
        out, counts = [], {"failed": 0, "solved": 0, "no_reply": 0, "fell_back": 0}
        for i, pair in enumerate(pairs):
            rows = res.rows[i * p.samples:(i + 1) * p.samples]
            gold = pair["question"]["answer"]
            picked = failed_reasoning(gold, pair["chosen"], rows)
            if picked is not None:
                counts["failed"] += 1
                out.append(pair | {"rejected": picked["response"], "rejected_by": student})
                continue
            answered = [r for r in rows if r is not None and not r.get("error") and (r.get("response") or "").strip()]
            counts["solved" if answered else "no_reply"] += 1
            if p.when_right == "teacher":
                counts["fell_back"] += 1
                out.append(pair | {"rejected_by": "teacher"})
        info = {"student": student, "questions": len(pairs), **counts, "kept": len(out),
                "when_right": p.when_right, "samples": p.samples, "requests_sent": res.progress.sent}
        row["on_policy"] = info
        self.event(f"on-policy: {student} failed {counts['failed']} of {len(pairs)} new questions; "
                   f"{len(out)} pairs kept")
        if not out:
            return None
        cfg = OnPolicyConfig(name=name, augment_run=augment_run, student=student, samples=p.samples,
                             temperature=p.temperature, when_right=p.when_right)
        stored = [{k: v for k, v in x.items() if k != "rejected_by"} for x in out]
        return preference_sets.store_pairs(store, cfg, name, f"on-policy:{augment_run}", stored,
                                           {"augment_run": augment_run, "on_policy": info,
                                            "rejected_by": [x["rejected_by"] for x in out]}, replace=True)

    def overlap(self, row: dict[str, Any]) -> dict[str, Any]:
        """How near the pool, the round's hard negatives and its pairs sit to the test set (map-overlap runs)."""
        c = self.config
        out = {}
        for side, name in zip(OVERLAP_SIDES, (c.pool_name(), mapping.MINING_PREFIX + row["mining_run"],
                                              row["pairs_set"])):
            cfg = c.overlap_config(name)
            s = self.follow(mapping.start_job(self.store, cfg), f"overlap {name} → {cfg.test}")
            out[side] = {k: s.get(k) for k in ("run", "train", "test", "embedder", "train_items", "test_items",
                                                "auc", "nn_similarity_mean", "nn_similarity_median",
                                                "near_duplicates", "threshold", "embed_computed")}
            out[side]["reading"] = (s.get("readings") or {}).get("auc")
            out[side]["near_duplicate_items"] = (s.get("near_duplicate_items") or [])[:5]
        return out

    def train(self, set_name: str) -> dict[str, Any]:
        from core.steps import train as training

        cfg = self.config.train_config(set_name)
        run_id, what = training.start(self.store, cfg)
        self.event(f"train {set_name}: run {run_id} ({what})")

        def progress(run: dict[str, Any]) -> None:
            p = run.get("progress") or {}
            if p.get("step") is not None:
                self.ctx.progress(done=self.done, total=self.total,
                                  message=f"train {run_id}: step {p.get('step')}/{p.get('max_steps') or '?'}")

        try:
            run = training.wait(self.store, run_id, on_progress=progress, stop=self.ctx.cancelled)
        except BaseException:  # the recipe dies with an error: no training worker outlives it
            self.cancel_training(run_id)
            raise
        if run["state"] == "running":  # cancelled while it trains: the worker is ended with the recipe
            self.cancel_training(run_id)
            raise Stopped
        if run["state"] != "done" or not run.get("adapter_model"):
            raise CoreError(f"training run {run_id} ended {run['state']}: {run.get('message') or 'no adapter'}",
                            hint=f"python -m core train show {run_id}; fix it and run the recipe again (it resumes)")
        return {"run": run_id, "adapter_model": run["adapter_model"], "tuned_model": self.served(run["adapter_model"]),
                "what": what}

    def cancel_training(self, run_id: str) -> None:
        """End a training run's worker (it keeps its checkpoints: the recipe run again resumes it)."""
        from core.steps import train as training

        try:
            run = training.cancel(self.store, run_id)
        except CoreError:  # it finished or failed in the meantime: nothing is left running
            return
        self.event(f"training run {run_id} cancelled with the recipe ({run.get('message')}); run the recipe "
                   "again to resume it")

    def served(self, tuned: str) -> str:
        """The tuned model as the rounds call it: the local adapter, or the server that serves it."""
        serve = self.config.serve
        if serve is None:
            return tuned
        import httpx

        name = f"{tuned}-served"
        if serve.load_adapter:
            adapter = models.get_model(self.store, tuned).adapter
            url = serve.base_url.rstrip("/") + "/load_lora_adapter"
            try:
                reply = httpx.post(url, json={"lora_name": tuned, "lora_path": adapter}, timeout=300)
            except httpx.HTTPError as exc:
                raise CoreError(f"cannot reach {url}: {exc}", hint="is the server up?") from None
            if reply.status_code >= 400 and "already" not in reply.text:
                raise CoreError(f"{url} refused adapter {tuned}: HTTP {reply.status_code} {reply.text[:200]}",
                                hint="start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True")
        if name not in {m["name"] for m in models.list_models(self.store)}:
            models.add_model(self.store, name, "openai", tuned, base_url=serve.base_url, params=serve.params,
                             description=f"{tuned} served by {serve.base_url}")
        return name

    def evaluate(self, model: str, label: str) -> dict[str, Any]:
        cfg = self.config.eval_config(model, label)
        prior = _done_run(self.store, "evaluate", cfg.digest())
        if prior:
            return prior | {"reused": True}
        return self.follow(eval_run.start_job(self.store, cfg), f"evaluate {label}")

    # ---- rounds -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        c = self.config
        self.prepare()
        self.check_cancel()
        base = self.evaluate(c.student, c.label(0))
        self.event(f"base {c.student}: accuracy {base.get('accuracy')} on {c.test_name()}", step_done=True)
        self.summary["base"] = {"model": c.student, "label": c.label(0), "eval_run": base.get("run")}
        self.save()
        student = c.miner or c.student
        for k in range(1, c.rounds + 1):
            self.check_cancel()
            row: dict[str, Any] = {"round": k, "student": student}
            self.summary["rounds"].append(row)
            mined = self.mine(student)
            kept = (mined.get("hard_negatives") or 0) + (mined.get("judged_kept") or 0)
            row |= {"mining_run": mined["run"], "hard_negatives": mined.get("hard_negatives"), "kept": kept,
                    "student_accuracy_on_pool": mined.get("student_accuracy")}
            self.event(f"round {k}: mined {mined['run']} with {student}: {kept} kept", step_done=True)
            self.save()
            if not kept:
                return self.stop(f"round {k}: {student} fails no question the teacher solves: nothing to teach")
            self.check_cancel()
            aug = self.augment(mined["run"])
            row |= {"augment_run": aug["run"], "candidates": aug.get("candidates"), "passed": aug.get("passed")}
            self.event(f"round {k}: augment {aug['run']}: {aug.get('passed')} of {aug.get('candidates')} passed",
                       step_done=True)
            self.check_cancel()
            sets = self.pairs(k, aug["run"], student, row)
            if sets is None:
                waiting = c.review.accept == "manual" and not row.get("on_policy")
                why = ("no pair accepted yet: accept pairs on the Review page (run " + aug["run"] + "), then run "
                       "the recipe again") if waiting else (
                    f"{student} solved every accepted question: no on-policy pair" if row.get("on_policy")
                    else "no candidate passed every gate")
                self.save()
                return self.stop(f"round {k}: {why}", state="waiting" if waiting else "done")
            row |= {"pairs": sets["own"]["pairs"], "pairs_set": sets["own"]["name"], "set": sets["train"]["name"],
                    "set_pairs": sets["train"]["pairs"], "set_hash": sets["train"]["hash"]}
            self.event(f"round {k}: {sets['own']['pairs']} pairs frozen as {sets['own']['name']}; trains on "
                       f"{sets['train']['name']} ({sets['train']['pairs']})", step_done=True)
            self.save()
            self.check_cancel()
            row["overlap"] = self.overlap(row)
            o = row["overlap"]
            self.event(f"round {k}: overlap with {c.test_name()} (AUC, 0.5 = indistinguishable): pool "
                       f"{o['pool']['auc']}, hard negatives {o['seeds']['auc']}, pairs {o['pairs']['auc']}",
                       step_done=True)
            self.save()
            self.check_cancel()
            trained = self.train(sets["train"]["name"])
            row |= {"train_run": trained["run"], "adapter_model": trained["adapter_model"],
                    "tuned_model": trained["tuned_model"]}
            self.event(f"round {k}: trained {trained['tuned_model']}", step_done=True)
            self.save()
            self.check_cancel()
            ev = self.evaluate(trained["tuned_model"], c.label(k))
            row["eval"] = round_eval(self.store, c, k) | {"eval_run": ev.get("run")}
            e = row["eval"]
            self.event(f"round {k}: accuracy {e['base_accuracy']:.3f} → {e['tuned_accuracy']:.3f} "
                       f"(McNemar p {e['mcnemar_p']:.3g}; vs previous {e['vs_previous']['diff']:+.3f})",
                       step_done=True)
            self.save()
            why = stop_reason(c, row["eval"])
            if why and k < c.rounds:
                return self.stop(f"round {k}: {why}")
            student = trained["tuned_model"]
        return self.stop(None)

    def stop(self, why: str | None, state: str = "done") -> dict[str, Any]:
        self.summary["stopped"] = why
        if why:
            self.event(f"stopped: {why}")
        self.summary["result_round"] = result_round(self.summary["rounds"])
        self.summary["state"] = state
        return self.summary


def round_eval(store: Store, config: RecipeConfig, k: int) -> dict[str, Any]:
    """Round k's tuned model against the base student and against round k-1 (the base for round 1)."""
    test = config.test_name()
    vs_base = evaluation.compare(store, test, config.label(0), config.label(k))
    vs_prev = vs_base if k == 1 else evaluation.compare(store, test, config.label(k - 1), config.label(k))
    rep = {m["model"]: m for m in evaluation.report(store, test)["models"]}
    base, tuned = rep[config.label(0)], rep[config.label(k)]

    def paired(cmp: dict[str, Any]) -> dict[str, Any]:
        b = cmp["bootstrap"] or {}
        return {"diff": cmp["accuracy_b"] - cmp["accuracy_a"], "mcnemar_p": cmp["mcnemar"]["p_value"],
                "fixed": cmp["mcnemar"]["b_only"], "broken": cmp["mcnemar"]["a_only"],
                "ci": [b.get("low"), b.get("high")], "clusters": b.get("n_clusters")}

    from scipy.stats import binomtest

    def wilson(acc: float, n: int) -> list[float]:
        ci = binomtest(round(acc * n), n).proportion_ci(0.95, method="wilson")
        return [round(ci.low, 4), round(ci.high, 4)]

    by_subject = []
    for s in vs_base["by_subject"]:
        tb = tuned["by_subject"].get(s["subject"], {})
        by_subject.append({"subject": s["subject"], "questions": s["questions"], "base_accuracy": s["accuracy_a"],
                           "tuned_accuracy": s["accuracy_b"], "tuned_ci": wilson(s["accuracy_b"], s["questions"]),
                           "diff": s["diff"], "fixed": s["fixed"],
                           "broken": s["broken"], "p_value": s["p_value"], "p_holm": s["p_holm"],
                           "base_points": base["by_subject"].get(s["subject"], {}).get("points"),
                           "tuned_points": tb.get("points"), "max_points": tb.get("max_points")})
    vb = paired(vs_base)
    return {"questions": vs_base["questions"], "base_accuracy": vs_base["accuracy_a"],
            "tuned_accuracy": vs_base["accuracy_b"], "previous_accuracy": vs_prev["accuracy_a"],
            "mcnemar_p": vb["mcnemar_p"], "fixed": vb["fixed"], "broken": vb["broken"], "ci": vb["ci"],
            "base_points": base["points"], "tuned_points": tuned["points"], "max_points": tuned["max_points"],
            "macro_f1": tuned["macro_f1"], "unanswered": tuned["unanswered"],
            "vs_previous": paired(vs_prev), "by_subject": by_subject}


def stop_reason(config: RecipeConfig, ev: dict[str, Any]) -> str | None:
    """Why the recipe's stop rule ends the loop after this round (None: go on)."""
    p = ev["vs_previous"]
    low, high = p["ci"]
    if "no_gain" in config.stop.when and low is not None and low <= 0 <= high:
        return f"gain over the previous round {p['diff']:+.3f} has a 95% CI [{low:+.3f}, {high:+.3f}] that includes 0"
    if "breaks_more" in config.stop.when and p["broken"] > p["fixed"]:
        return f"it breaks {p['broken']} questions the previous round got right and fixes {p['fixed']}"
    if "worse" in config.stop.when and p["diff"] < 0:
        return f"accuracy fell by {-p['diff']:.3f} against the previous round"
    return None


def result_round(rounds: list[dict[str, Any]]) -> int | None:
    """The round whose tuned model the bundle carries: the best test accuracy (the earliest on a tie)."""
    scored = [r for r in rounds if r.get("eval")]
    if not scored:
        return None
    return max(scored, key=lambda r: (r["eval"]["tuned_accuracy"], -r["round"]))["round"]


def _exists(store: Store, name: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM datasets WHERE name = ?", [name]))


def _path(file: str) -> Path:
    p = Path(file).expanduser()
    return p if p.is_absolute() or p.exists() else ROOT / p


def _done_run(store: Store, step: str, digest: str) -> dict[str, Any] | None:
    rows = store.rows("SELECT id, summary FROM runs WHERE step = ? AND config_hash = ? AND state = 'done' "
                      "ORDER BY created_at DESC LIMIT 1", [step, digest])
    if rows and rows[0]["summary"]:
        return json.loads(rows[0]["summary"]) | {"run": rows[0]["id"]}
    return None


def subset(store: Store, name: str, limit: int) -> str:
    """Dataset NAME-firstN: the first N questions of NAME (exported and imported as the Data step does)."""
    sub = f"{name}-first{limit}"
    if _exists(store, sub):
        return sub
    split = datasets.require(store, name)["split"]
    with tempfile.TemporaryDirectory() as d:
        full = Path(d) / "all.jsonl"
        datasets.export_dataset(store, name, "jsonl", full)
        part = Path(d) / f"{sub}.jsonl"
        part.write_text("".join(full.read_text(encoding="utf-8").splitlines(keepends=True)[:limit]), encoding="utf-8")
        datasets.import_file(store, part, sub, split, fmt="generic", source=f"first {limit} of {name}")
    return sub


def run(store: Store, config: RecipeConfig, ctx: JobContext | None = None, bundle_dir: str | Path | None = None,
        on_event: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every round (resuming what a killed run left), then write the bundle; returns the summary."""
    from core import recipe_bundle

    ctx = ctx or JobContext.local()
    runner = _Runner(store, config, ctx, on_event)
    with runs.recording(store, config, ctx.job_id) as run_id:
        runner.summary["run"] = run_id
        try:
            summary = runner.run()
        except Stopped:
            runner.summary["state"] = "cancelled"
            runs.finish_run(store, run_id, "cancelled", runner.summary, "cancelled; run it again to resume")
            return runner.summary
        if summary["result_round"] is not None:
            summary["bundle"] = str(recipe_bundle.write(store, config, summary, bundle_dir))
            runner.event(f"bundle: {summary['bundle']}")
    runs.finish_run(store, run_id, summary["state"], summary, summary.get("stopped"))
    return summary


def start_job(store: Store, config: RecipeConfig, bundle_dir: str | Path | None = None,
              on_event: Callable[[str], None] | None = None) -> str:
    """The recipe as a background job (the Home page and the CLI): each step runs as its own job inside.
    A missing key is refused here, before anything is imported, sent or evaluated."""
    problems = key_problems(store, config)
    if problems:
        raise CoreError(problems[0], hint="set it in the environment (or .streamlit/secrets.toml), e.g. "
                                          "export GEMINI_API_KEY=…, then run the recipe again")
    return jobs.start(store, "recipe", f"recipe {config.name} ({config.rounds} round(s))",
                      lambda ctx: run(store, config, ctx, bundle_dir, on_event), params=config.model_dump(),
                      total=2 + STEPS_PER_ROUND * config.rounds)


def latest(store: Store, config: RecipeConfig) -> dict[str, Any] | None:
    """This recipe's run record (same config), with its rounds so far; None before its first run."""
    rows = store.rows("SELECT id FROM runs WHERE step = 'recipe' AND config_hash = ? ORDER BY created_at DESC LIMIT 1",
                      [config.digest()])
    return runs.get_run(store, rows[0]["id"], "recipe") if rows else None

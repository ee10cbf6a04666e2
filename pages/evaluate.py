"""Evaluate: did the tuned student get better, where, and can the difference be trusted?"""

import streamlit as st

from core import figures, generations, models
from core.steps import plural
from core.steps.data import datasets
from core.steps.evaluate import eval_run, evaluation, gold_labels, predictions
from core.steps.solve import solve
from pages._ui import (
    cached,
    chart,
    estimate_caption,
    flash,
    get_store,
    label_text,
    launch,
    made_by,
    run_action,
    saved_upload,
    show_question,
    step_runner,
    table,
    text,
)

store = get_store()
st.title("Evaluate")
flash()

sets = datasets.list_datasets(store)
if not sets:
    st.info("Accuracy, macro-F1 and CSAT points per subject against the base model, with paired significance.\n\n"
            "**Needs first:** a test set (Data page).")
    st.stop()
order = sorted(sets, key=lambda s: s["split"] != "test")
dataset = st.selectbox("Test set", [s["name"] for s in order],
                       format_func=lambda n: f"{n} ({next(s for s in sets if s['name'] == n)['split']})")

# ---- predictions: run a model, or import ---------------------------------------------------
# Filled only when open: the forms and the live estimate, laid out hidden on every visit, slowed the page.
box = st.expander("Add predictions", expanded=not cached(predictions.list_runs, store, dataset), key="eval-add",
                  on_change="rerun")
if box.open:
    with box:
        run_tab, import_tab = st.tabs(["Run a registered model", "Import predictions CSV"])
        with run_tab:
            registered = [m["name"] for m in models.list_models(store)]

            def preview(shown: dict) -> None:
                """The estimate (and a template warning) of the run the form would start now."""
                if not shown.get("model"):
                    return
                if shown["limit"] and not str(shown["limit"]).isdigit():
                    st.caption("First N questions: a whole number ≥ 1 (empty: all).")
                    return
                estimate_caption(lambda: solve.estimate(
                    store, dataset, shown["model"], int(shown["samples"]),
                    float(shown["temperature"]) if shown["temperature"] else None,
                    limit=int(shown["limit"]) if shown["limit"] else None, subject=shown["subject"]))
                if warn := eval_run.prompt_warning(store, eval_run.EvalConfig(dataset=dataset, model=shown["model"])):
                    st.warning(text(warn))

            # live: the estimate follows the model, K and slice on screen, before Run is pressed
            step_runner(store, eval_run.EvalConfig, eval_run.start_job, key="eval", kind="eval", live=True,
                        submit="Run", columns=4, fixed={"dataset": dataset}, disabled=not registered, preview=preview,
                        choices={"model": registered, "subject": cached(eval_run.subjects, store, dataset)},
                        labels={"subject": {None: "(all subjects)"}, "limit": {None: "(all)"}})
        with import_tab:
            up = st.file_uploader("CSV with columns id,answer (answers 1–5, blank = no answer)", type=["csv"])
            imp_label = st.text_input("Label", placeholder="e.g. submission-v3")
            tmp = saved_upload(up, "eval-import")  # once per file; a replaced upload is removed
            if st.button("Import predictions", disabled=not (up and imp_label)):
                r = run_action(lambda: predictions.import_predictions(store, dataset, tmp, imp_label))
                if r:
                    msg = f"Stored {r.stored} predictions as {imp_label!r}."
                    if r.missing:
                        msg += f" {r.missing} questions have no prediction (count as unanswered)."
                    if r.unknown_ids:
                        msg += f" {len(r.unknown_ids)} id(s) not in {dataset!r} were not stored: " + ", ".join(r.unknown_ids[:10])
                    flash(msg)
                    st.rerun()

rep = cached(evaluation.report, store, dataset)


# The charts, built (and escaped, pages/_ui.py:chart) once per write to the store, not on every rerun.
def _subject_bars(store, dataset: str, metric: str):
    return figures.subject_bars(cached(evaluation.report, store, dataset), metric)


def _position_bars(store, dataset: str):
    return figures.position_bars(cached(evaluation.positions, store, dataset))


def _confusion_figure(store, dataset: str, model: str):
    return figures.confusion_heatmap(cached(evaluation.confusion, store, dataset, model))


def subject_cells(m: dict, subject: str) -> dict[str, str]:
    """One model's accuracy and CSAT points (earned / max) in one subject."""
    sub = m["by_subject"].get(subject, {})
    pts = f"{sub['points']:g} / {sub['max_points']:g}" if sub.get("points") is not None else "—"
    return {m["model"]: f"{sub.get('accuracy', 0):.2%}", f"{m['model']} points": pts}


# Replies stored by another step (a Solve on Settings, mining) are not yet a prediction set: offer them.
_scored = {m["model"] for m in rep["models"]}
_registered = {m["name"] for m in models.list_models(store)}
for c in generations.solved_on(store, dataset):
    if c["model"] in _scored or c["model"] not in _registered:
        continue
    i1, i2 = st.columns([4, 1])
    i1.info(f"**{text(c['model'])}** has {plural(c['replies'], 'stored reply', 'stored replies')} on {text(dataset)} "
            f"({plural(c['questions'], 'question')}, K = {c['samples']}), e.g. from a Solve on Settings, but no "
            "prediction set yet. Scoring them reuses the stored replies (same settings): nothing is paid twice.")
    if i2.button("Score these replies", key=f"use-cached-{c['model']}", type="primary") and launch(
            "eval-job", lambda c=c: eval_run.start_job(
                store, eval_run.EvalConfig(dataset=dataset, model=c["model"], samples=c["samples"]))):
        st.rerun()
if not rep["models"]:
    st.info("No predictions on this set yet: run a model or import a CSV above.")
    st.stop()
if rep["questions"] == 0:
    st.warning("This set has no gold answers yet: build them by majority vote below.")

# ---- report ----------------------------------------------------------------------------------
st.header("Report")
any_slice = any(m.get("slice") for m in rep["models"])
if any_slice:
    st.caption("A slice (Run with *First N questions* or *Subject*) is scored on its own questions (its n) and "
               "compared with another set on the questions both answered.")
table([{"model": m["model"], **({"slice": m.get("slice") or "whole set"} if any_slice else {}), "n": m["questions"],
        "correct": m["correct"], "accuracy": f"{m['accuracy']:.2%}",
           "macro-F1": f"{m['macro_f1']:.3f}",
           "CSAT points": f"{m['points']:g} / {m['max_points']:g}" if m["points"] is not None else "—",
           "unanswered": m["unanswered"], "of which errors": m.get("errors", 0), "truncated": m["truncated"]}
          for m in rep["models"]])
for m in rep["models"]:
    made_by(eval_run.run_for(store, dataset, m["model"]))  # imported predictions have no run: no line
table([{"subject": s, "n": m["by_subject"][s]["questions"]} | {
    k: v for mm in rep["models"] for k, v in subject_cells(mm, s).items()}
    for m in rep["models"][:1] for s in m["by_subject"]])
# One chart at a time: the browser drawing three Plotly charts made this page slow to open, and the
# position and confusion charts are the second look, not the first.
view = st.radio("Chart", ["by subject", "answer positions", "confusion matrix"], horizontal=True, key="eval-chart")
if view == "by subject":
    metric = st.radio("Metric", ["accuracy", "macro_f1"], horizontal=True, key="eval-metric")
    chart(cached(_subject_bars, store, dataset, metric), width="stretch")
elif view == "answer positions":
    # The full width: grouped bars (gold + every model) × 6 choices with a count on each collided in half of it.
    chart(cached(_position_bars, store, dataset), width="stretch", key="eval-positions")
else:
    left, _ = st.columns(2)
    cm_model = left.selectbox("Confusion matrix for", [m["model"] for m in rep["models"]])
    chart(cached(_confusion_figure, store, dataset, cm_model), left, width="stretch")

d1, d2 = st.columns(2)
d1.download_button("Report CSV", evaluation.report_csv(rep).encode("utf-8"), f"{dataset}_report.csv", "text/csv")
if d2.button("Prepare chart PNG", help="the chart by subject, in the metric last picked"):
    png = run_action(lambda: figures.to_png(cached(_subject_bars, store, dataset,
                                                   st.session_state.get("eval-metric", "accuracy"))))
    if isinstance(png, bytes):
        st.session_state["eval-png"] = png
if st.session_state.get("eval-png"):
    d2.download_button("Download PNG", st.session_state["eval-png"], f"{dataset}_by_subject.png", "image/png")

# ---- compare ---------------------------------------------------------------------------------
labels = [m["model"] for m in rep["models"]]
if len(labels) >= 2 and rep["questions"]:  # no gold answers: nothing to compare yet
    st.header("Compare")
    c1, c2 = st.columns(2)
    a = c1.selectbox("A (baseline)", labels, index=0)
    b = c2.selectbox("B (candidate)", labels, index=1)
    if a != b:
        cmp = cached(evaluation.compare, store, dataset, a, b)
        mc, bt = cmp["mcnemar"], cmp["bootstrap"]
        m1, m2, m3, m4 = st.columns([1, 1, 1, 1.8])  # the CI ("[+100.0, +100.0] %p") is clipped in a quarter
        # Numeric deltas: Streamlit picks the arrow and colour from the sign (zero: grey, no arrow).
        m1.metric(f"{label_text(b)} accuracy", f"{cmp['accuracy_b']:.2%}", round((cmp['accuracy_b'] - cmp['accuracy_a']) * 100, 2),
                  delta_description="%p vs A")
        m2.metric("fixed / broken", f"{mc['b_only']} / {mc['a_only']}", mc["b_only"] - mc["a_only"],
                  delta_description="net")
        m3.metric("McNemar exact p", f"{mc['p_value']:.4f}")
        m4.metric("95% CI of the difference", f"[{bt['low'] * 100:+.1f}, {bt['high'] * 100:+.1f}] %p")
        st.caption(f"n = {cmp['questions']}; bootstrap over {bt['n_clusters']} passages (questions sharing a passage "
                   f"are resampled together), {bt['n_resamples']:,} resamples, seed {bt['seed']}.")
        table([{"subject": r["subject"], "n": r["questions"], a: f"{r['accuracy_a']:.2%}", b: f"{r['accuracy_b']:.2%}",
                   "diff (%p)": f"{r['diff'] * 100:+.1f}", "fixed": r["fixed"], "broken": r["broken"],
                   "p": f"{r['p_value']:.3f}", "p (Holm)": f"{r['p_holm']:.3f}"} for r in cmp["by_subject"]])
        kind = st.radio("Questions", ["fixed", "broken"], horizontal=True,
                        format_func=lambda k: f"{k} ({len(cmp[k])})")
        items = cmp[kind]
        errors_a, errors_b = (cached(evaluation.prediction_errors, store, dataset, x) for x in (a, b))
        if items:
            pick = st.selectbox("Question", [i["qid"] for i in items],
                                format_func=lambda q: next(
                                    f"{i['qid']} · {i['subject']} · 정답 {i['answer']}, "
                                    f"{a}: {evaluation.shown_answer(i['a'], errors_a.get(i['qid']))}, "
                                    f"{b}: {evaluation.shown_answer(i['b'], errors_b.get(i['qid']))}"
                                    for i in items if i["qid"] == q))
            q = next(x for x in datasets.questions(store, dataset, search=pick) if x["qid"] == pick)
            with st.expander("Question", expanded=True):
                show_question(q, q["qid"], {q["answer"]: "정답"})
            ra, rb = st.columns(2)
            for col, label in ((ra, a), (rb, b)):
                gens = predictions.reasoning_for(store, dataset, label, pick)
                col.subheader(label_text(label))
                if not gens:
                    col.caption("Imported predictions carry no reasoning.")
                for g in gens:
                    col.caption(f"sample {g['sample']} · answer {evaluation.shown_answer(g['answer'], g['error'])} · "
                                f"{label_text(g['answer_reason'] or g['error'] or '', 200)}")
                    col.markdown(text(g["response"] or g["error"] or ""))

# ---- gold labels -----------------------------------------------------------------------------
st.header("Gold labels by majority vote")
st.caption("The original project labelled its test set by a majority vote of several teacher models × runs. "
           "Ties are never guessed: settle them here. Labels keep their source (file / vote / person).")
voters = st.multiselect("Voters (prediction sets)", labels)
if st.button("Vote", disabled=not voters):
    st.session_state["votes"] = run_action(lambda: gold_labels.vote_gold_labels(store, dataset, voters))
v = st.session_state.get("votes")
if v and v["dataset"] == dataset:
    mean = f"{v['mean_agreement']:.2%}" if v["mean_agreement"] is not None else "—"
    kappa = (f"; Fleiss' κ {v['fleiss_kappa']:.3f} over {v['kappa_items']} questions"
             if v.get("fleiss_kappa") is not None else "")
    st.write(f"{v['labelled']}/{v['questions']} labelled, {v['unanimous']} unanimous, {v['ties']} ties, "
             f"mean agreement {mean}{kappa}.")
    decisions = {}
    for d in v["disagreements"][:100]:
        decided = st.number_input(f"{label_text(d['qid'])}: votes {d['votes']}", 0, 5, d["label"] or 0, key=f"settle-{d['qid']}",
                                  help="0 = leave unlabelled")
        if decided and decided != d["label"]:
            decisions[d["qid"]] = decided
    if st.button("Write labels as gold answers"):
        n = run_action(lambda: gold_labels.apply_gold_labels(store, dataset, decisions))
        if n is not None:
            flash(f"Wrote {n} gold answers ({len(decisions)} settled by hand).")
            st.session_state.pop("votes", None)
            st.rerun()

"""Mine: teacher and student solve a pool; hard negatives (teacher ✓, student ✗) with both reasoning paths."""

import plotly.express as px
import streamlit as st

from core import models
from core.render import answer_label, answers_label
from core.steps.data import datasets
from core.steps.mine import mining
from core.steps.solve import solve
from pages._ui import (
    cached,
    chart,
    flash,
    get_store,
    label_text,
    made_by,
    run_action,
    show_question,
    step_runner,
    table,
    text,
)

OUTCOME_LABELS = {"hard_negative": "teacher ✓ student ✗ (hard negative)", "both_correct": "both ✓",
                  "both_wrong": "both ✗", "student_only": "teacher ✗ student ✓", "no_answer": "no gold answer",
                  "error": "error (a request failed: no outcome, re-sent next run)"}



def _outcome_bars(store, run_id: str, n: int):
    """Outcomes per subject: built (and escaped, pages/_ui.py:chart) once per write to the store."""
    counts = [{"subject": r["subject"], "outcome": OUTCOME_LABELS[r["outcome"]], "questions": r["n"]}
              for r in cached(mining.by_subject, store, run_id)]
    return px.bar(counts, x="subject", y="questions", color="outcome", barmode="stack", text="questions",
                  title=f"Outcomes per subject (n = {n})")


store = get_store()
st.title("Mine")
flash()
st.caption("Both models solve every question of a pool. Questions the teacher gets right and the student wrong are "
           "hard negatives: the teacher's golden reasoning and the student's failed reasoning are kept side by side.")

sets = cached(datasets.list_datasets, store)
catalog = cached(models.list_models, store)
registered = [m["name"] for m in catalog]
if not sets or len(registered) < 2:
    st.info("**Needs first:** a train pool (Data page) and a teacher and a student model (Settings page).")
    st.stop()

# ---- start a run -------------------------------------------------------------------------------
# Open while there is no finished run, or while a job (running, or ended and not dismissed) is shown in it:
# a failed run's error stays on the page until the user dismisses it.
with st.expander("New mining run", expanded=not any(r["state"] == "done" for r in cached(mining.list_runs, store))
                 or bool(st.session_state.get("mine-job"))):
    pools = [s["name"] for s in sorted(sets, key=lambda s: s["split"] != "train")]
    # Defaults as in the original project: a Gemini teacher, a Qwen3 student (vLLM-served or local).
    gem = [m["name"] for m in catalog if m["provider"] == "gemini"]
    qwen = [m["name"] for m in catalog if "qwen" in m["model_id"].lower()] or \
        [m["name"] for m in catalog if m["provider"] != "gemini"]
    teacher = gem[0] if gem else registered[0]
    student = next(iter([n for n in qwen if n != teacher] or [n for n in registered if n != teacher]))

    def preview(shown: dict) -> None:
        """Warnings and the cost estimate of the run the form would start now (the values on screen)."""
        no_answer = run_action(lambda: mining.unanswerable(store, shown["pool"]))
        if isinstance(no_answer, int) and not isinstance(no_answer, bool) and no_answer:
            st.warning(f"{no_answer} question(s) in {label_text(repr(shown['pool']))} have no answer and cannot be "
                       "mined: they will be skipped (listed, not sent to any model).")
        missing_keys = [p for p in (models.key_problem(models.get_model(store, who))
                                    for who in dict.fromkeys((shown["teacher"], shown["student"]))
                                    if who in registered) if p]
        for problem in missing_keys:
            st.warning(f"{label_text(problem)}: mining cannot start. Set it before starting the dashboard "
                       "(e.g. `export GEMINI_API_KEY=…`), or choose another model.")
        for who in dict.fromkeys((shown["teacher"], shown["student"])):
            if any(p.startswith(f"{who} has no API key") for p in missing_keys):
                continue  # no cost estimate for a run that cannot start
            est = run_action(lambda who=who: solve.estimate(
                store, shown["pool"], who, int(shown["samples"]),
                float(shown["temperature"]) if shown["temperature"] else None, gold_only=True))
            if isinstance(est, dict):
                st.caption(f"{label_text(who)}: {label_text(solve.estimate_text(est))}.")

    # live: the estimate and warnings follow the pool, models and K on screen, before anything is pressed
    step_runner(store, mining.MiningConfig, mining.start_job, key="mine", kind="mine", live=True,
                submit="Start mining", preview=preview,
                choices={"pool": pools, "teacher": registered, "student": registered,
                         "judge": registered, "classifier": registered},
                defaults={"teacher": teacher, "student": student},
                check=lambda c: "Choose two different models for the teacher and the student."
                if c.teacher == c.student else None)

# ---- results -------------------------------------------------------------------------------------
runs = [r for r in cached(mining.list_runs, store) if r["state"] == "done"]
if not runs:
    st.info("No finished mining run yet.")
    st.stop()
run_id = st.selectbox("Run", [r["run"] for r in runs], format_func=lambda r: next(
    f"{x['run']} · {x['pool']} · {x['teacher']} vs {x['student']} · {x['created_at'][:16]}" for x in runs if x["run"] == r))
s = next(r for r in runs if r["run"] == run_id)
run = cached(mining.get_run, store, run_id)
cfg = run["config"]
made_by(run | {"step": "mine"})
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("teacher accuracy", f"{(s['teacher_accuracy'] or 0):.1%}")
m2.metric("student accuracy", f"{(s['student_accuracy'] or 0):.1%}")
m3.metric("hard negatives", s["hard_negatives"])
m4.metric("both ✓ (judge kept)", f"{s['both_correct']} ({s['judged_kept']})")
m5.metric("both ✗ / student only", f"{s['both_wrong']} / {s['student_only']}")
rule_text = ("majority of K" if cfg["rule"] == "majority" else f"student wrong in ≥ {cfg['min_wrong']} of K")
st.caption(f"K = {cfg['samples']}, rule: {rule_text}; judge: {label_text(cfg['judge'] or 'none')}; "
           f"{s['no_answer']} question(s) without gold answers skipped. "
           + (f"{s['errors']} question(s) errored (no outcome; re-sent on the next run): "
              + "; ".join(f"{n}× {text(r)}" for r, n in (s.get("error_reasons") or {}).items()) + ". "
              if s.get("errors") else "")
           + f"{s['requests_sent']} requests sent, {s['cached']} served from the cache.")

rows = cached(mining.by_subject, store, run_id)
if rows:
    chart(cached(_outcome_bars, store, run_id, s["questions"]), width="stretch")
    subjects = sorted({r["subject"] for r in rows})
    table([{"subject": subj} | {OUTCOME_LABELS[o]: next((r["n"] for r in rows if r["subject"] == subj
                                                             and r["outcome"] == o), 0) for o in mining.OUTCOMES}
              for subj in subjects])

# ---- lists and one question ----------------------------------------------------------------------
st.header("Questions")
f1, f2, f3, f4 = st.columns(4)
which = f1.selectbox("Show", ["kept", *mining.OUTCOMES],
                     format_func=lambda o: "kept (hard negatives + judge-kept)" if o == "kept" else OUTCOME_LABELS[o])
subj = f2.selectbox("Subject", ["(all)", *sorted({r["subject"] for r in rows})])
listed = mining.items(store, run_id, outcome=None if which == "kept" else which, kept=True if which == "kept" else None,
                      subject=None if subj == "(all)" else subj)
answers = sorted({a for i in listed for a in (i["student_answers"] or []) if a is not None})
stud = f3.selectbox("Student answered", ["(any)", *answers], format_func=lambda a: a if a == "(any)" else answer_label(a))
fails = f4.selectbox("Student wrong in (of K)", ["(any)", *range(1, cfg["samples"] + 1)])
if stud != "(any)":
    listed = [i for i in listed if stud in (i["student_answers"] or [])]
if fails != "(any)":
    listed = [i for i in listed if i["student_wrong"] == fails]
if not listed:
    st.info("Nothing here with these filters.")
    st.stop()
st.dataframe([{"id": i["qid"], "subject": i["subject"], "outcome": OUTCOME_LABELS[i["outcome"]], "gold": answer_label(i["gold"]),
               "teacher": answers_label(i["teacher_answers"]), "student": answers_label(i["student_answers"]),
               "student wrong": f"{i['student_wrong']}/{cfg['samples']}", "judge": i["judge_preferred"] or "—",
               "stem": i["question"]} for i in listed], hide_index=True, width="stretch")
qid = st.selectbox(f"Open one of {len(listed)}", [i["qid"] for i in listed])
item = next(i for i in listed if i["qid"] == qid)
q = next(x for x in datasets.questions(store, cfg["pool"], search=qid) if x["qid"] == qid)
marks = {q["answer"]: "정답"} if q["answer"] else {}
if item["failed_answer"] and item["failed_answer"] != q["answer"]:
    marks[item["failed_answer"]] = "student's answer"
with st.container(border=True):
    known = q["subject"] and q["subject"] != "unknown"
    subject = (f"{label_text(q['subject'])}" + (f" ({label_text(q['subject_source'])})" if q.get("subject_source")
               and q["subject_source"] != "unknown" else "")) if known else "subject unknown"
    st.caption(f"{subject} · 정답 {q['answer']}" + (f" · {q['points']:g}점" if q["points"] else ""))
    show_question(q, q["qid"], marks)
left, right = st.columns(2)
with left:
    st.subheader(f"Golden path · {label_text(cfg['teacher'])}")
    st.caption(f"answer: {answer_label(item['golden_answer'])} · samples: {answers_label(item['teacher_answers'])}")
    st.markdown(text(item["golden_response"] or "(no correct teacher sample)"))
with right:
    label = "Failed path" if item["outcome"] == "hard_negative" else "Student path"
    st.subheader(f"{label} · {label_text(cfg['student'])}")
    st.caption(f"answer: {answer_label(item['failed_answer'])} · samples: {answers_label(item['student_answers'])}")
    st.markdown(text(item["failed_response"] or "(no wrong student sample)"))
if item["judge_key"]:
    st.info(f"Judge ({label_text(cfg['judge'])}): prefers **{label_text(item['judge_preferred'] or 'unparseable')}** — {text(item['judge_reason'])}")

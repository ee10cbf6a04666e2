"""Mine: teacher and student solve a pool; hard negatives (teacher ✓, student ✗) with both reasoning paths."""

import plotly.express as px
import streamlit as st

from core import datasets, mining, models, solve
from core.render import answer_label, answers_label
from pages._ui import flash, get_store, job_panel, run_action, show_question, text

OUTCOME_LABELS = {"hard_negative": "teacher ✓ student ✗ (hard negative)", "both_correct": "both ✓",
                  "both_wrong": "both ✗", "student_only": "teacher ✗ student ✓", "no_answer": "no gold answer"}

store = get_store()
st.title("Mine")
flash()
st.caption("Both models solve every question of a pool. Questions the teacher gets right and the student wrong are "
           "hard negatives: the teacher's golden reasoning and the student's failed reasoning are kept side by side.")

sets = datasets.list_datasets(store)
catalog = models.list_models(store)
registered = [m["name"] for m in catalog]
if not sets or len(registered) < 2:
    st.info("**Needs first:** a train pool (Data page) and a teacher and a student model (Settings page).")
    st.stop()

# ---- start a run -------------------------------------------------------------------------------
with st.expander("New mining run", expanded=not mining.list_runs(store)):
    pools = sorted(sets, key=lambda s: s["split"] != "train")
    c1, c2, c3 = st.columns(3)
    pool = c1.selectbox("Question pool", [s["name"] for s in pools])
    # Defaults as in the original project: a Gemini teacher, a Qwen3 student (vLLM-served or local).
    gem = [m["name"] for m in catalog if m["provider"] == "gemini"]
    qwen = [m["name"] for m in catalog if "qwen" in m["model_id"].lower()] or \
        [m["name"] for m in catalog if m["provider"] != "gemini"]
    teacher = c2.selectbox("Teacher", registered, index=registered.index(gem[0]) if gem else 0)
    others = [n for n in qwen if n != teacher] or [n for n in registered if n != teacher] or registered
    student = c3.selectbox("Student", registered, index=registered.index(others[0]))
    c4, c5, c6 = st.columns(3)
    samples = c4.number_input("Samples per model (K)", 1, 20, 1)
    rule = c5.radio("Student is wrong when", ["majority", "hard"], horizontal=True,
                    format_func={"majority": "majority of K wrong", "hard": "wrong in ≥ m of K"}.get)
    min_wrong = c6.number_input("m", 1, int(samples), 1, disabled=rule != "hard")
    c7, c8, c9 = st.columns(3)
    temperature = c7.number_input("Temperature (0 = greedy)", 0.0, 2.0, 0.0 if samples == 1 else 0.7, 0.1)
    judge = c8.selectbox("Judge for both-✓ pairs (optional)", ["(none)", *registered])
    classifier = c9.selectbox("Subject classifier for unknown subjects (optional)", ["(none)", *registered])
    no_answer = store.scalar("SELECT count(*) FROM questions WHERE dataset = ? AND answer IS NULL", [pool])
    if no_answer:
        st.warning(f"{no_answer} question(s) in {pool!r} have no answer and cannot be mined: they will be skipped "
                   "(listed, not sent to any model).")
    for who in {teacher, student}:
        est = run_action(lambda who=who: solve.estimate(store, pool, who, samples, temperature, gold_only=True))
        if est:
            cost = f", ≈ ${est['est_cost_usd']:.4f}" if est.get("est_cost_usd") is not None else ""
            st.caption(f"{who}: {est['to_send']} requests to send, {est['cached']} cached{cost}.")
    if st.button("Start mining", type="primary", disabled=teacher == student):
        cfg = run_action(lambda: mining.MiningConfig(
            pool=pool, teacher=teacher, student=student, samples=samples, rule=rule, min_wrong=min_wrong,
            temperature=temperature, judge=None if judge == "(none)" else judge,
            classifier=None if classifier == "(none)" else classifier))
        if cfg:
            job = run_action(lambda: mining.start_job(store, cfg))
            if job:
                st.session_state["mine-job"] = job
    if teacher == student:
        st.caption("Choose two different models.")
    job_panel(store, "mine-job", kind="mine")

# ---- results -------------------------------------------------------------------------------------
runs = [r for r in mining.list_runs(store) if r["state"] == "done"]
if not runs:
    st.info("No finished mining run yet.")
    st.stop()
run_id = st.selectbox("Run", [r["run"] for r in runs], format_func=lambda r: next(
    f"{x['run']} · {x['pool']} · {x['teacher']} vs {x['student']} · {x['created_at'][:16]}" for x in runs if x["run"] == r))
s = next(r for r in runs if r["run"] == run_id)
cfg = mining.get_run(store, run_id)["config"]
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("teacher accuracy", f"{(s['teacher_accuracy'] or 0):.1%}")
m2.metric("student accuracy", f"{(s['student_accuracy'] or 0):.1%}")
m3.metric("hard negatives", s["hard_negatives"])
m4.metric("both ✓ (judge kept)", f"{s['both_correct']} ({s['judged_kept']})")
m5.metric("both ✗ / student only", f"{s['both_wrong']} / {s['student_only']}")
rule_text = ("majority of K" if cfg["rule"] == "majority" else f"student wrong in ≥ {cfg['min_wrong']} of K")
st.caption(f"K = {cfg['samples']}, rule: {rule_text}; judge: {cfg['judge'] or 'none'}; "
           f"{s['no_answer']} question(s) without gold answers skipped. "
           f"{s['requests_sent']} requests sent, {s['cached']} served from the cache.")

rows = mining.by_subject(store, run_id)
if rows:
    chart = [{"subject": r["subject"], "outcome": OUTCOME_LABELS[r["outcome"]], "questions": r["n"]} for r in rows]
    fig = px.bar(chart, x="subject", y="questions", color="outcome", barmode="stack", text="questions",
                 title=f"Outcomes per subject (n = {s['questions']})")
    st.plotly_chart(fig, width="stretch")
    subjects = sorted({r["subject"] for r in rows})
    st.table([{"subject": subj} | {OUTCOME_LABELS[o]: next((r["n"] for r in rows if r["subject"] == subj
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
    st.caption(f"{q['subject']} ({q['subject_source']}) · 정답 {q['answer']}" + (f" · {q['points']:g}점" if q["points"] else ""))
    show_question(q, q["qid"], marks)
left, right = st.columns(2)
with left:
    st.subheader(f"Golden path · {cfg['teacher']}")
    st.caption(f"answer: {answer_label(item['golden_answer'])} · samples: {answers_label(item['teacher_answers'])}")
    st.markdown(text(item["golden_response"] or "(no correct teacher sample)"))
with right:
    label = "Failed path" if item["outcome"] == "hard_negative" else "Student path"
    st.subheader(f"{label} · {cfg['student']}")
    st.caption(f"answer: {answer_label(item['failed_answer'])} · samples: {answers_label(item['student_answers'])}")
    st.markdown(text(item["failed_response"] or "(no wrong student sample)"))
if item["judge_key"]:
    st.info(f"Judge ({cfg['judge']}): prefers **{item['judge_preferred'] or 'unparseable'}** — {text(item['judge_reason'])}")

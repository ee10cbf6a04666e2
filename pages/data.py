"""Data: import question files, preview them exam-style, see counts, browse, delete."""

from pathlib import Path

import plotly.express as px
import streamlit as st

from core.steps import plural
from core.steps.data import datasets
from core.steps.data.datasets import parse_mapping
from core.steps.data.formats import FORMATS, parse_file
from core.steps.data.formats.base import sha256_of
from pages._ui import cached, chart, flash, get_store, label_text, run_action, saved_upload, show_question, table

store = get_store()
st.title("Data")


def _browse(store, name: str, search: str | None, subject: str | None) -> list[dict]:
    return datasets.questions(store, name, search=search, subject=subject)


def _subject_bars(store):
    """Questions per subject and dataset: built (and escaped, pages/_ui.py:chart) once per write."""
    counts = [{"dataset": s["name"], "subject": subj, "questions": n}
              for s in cached(datasets.list_datasets, store) for subj, n in s["subjects"].items()]
    return px.bar(counts, x="subject", y="questions", color="dataset", barmode="group", text="questions",
                  title="Questions per subject")


flash()

# ---- what is stored -----------------------------------------------------------------------
sets = cached(datasets.list_datasets, store)
if sets:
    # st.table, not st.dataframe: a handful of rows, and readable text in the DOM.
    table([{"name": s["name"], "split": s["split"], "questions": s["questions"],
               # one type per column: a number beside "—" makes pyarrow fail (and log it) on every render
               "points": str(s["points"]) if s["points"] is not None else "—", "format": s["format"],
               "source": s["source"]} for s in sets])
    subjects_all = sorted({subj for s in sets for subj in s["subjects"]})
    table([{"subject": subj} | {s["name"]: s["subjects"].get(subj, 0) for s in sets} for subj in subjects_all])
    chart(cached(_subject_bars, store), width="stretch")
else:
    st.info("No datasets yet: import a file below, or load the bundled samples on the Home page.")

# ---- import -------------------------------------------------------------------------------
st.header("Import")
upload = st.file_uploader("Question file", type=["csv", "json", "jsonl", "parquet"])
path_text = st.text_input("…or a path on this machine (file or Hugging Face datasets folder)")
c1, c2, c3 = st.columns(3)
fmt = c1.selectbox("Format", FORMATS, help="auto detects Boostcamp CSV, KICE JSON, KMMLU CSV, else generic")
split = c2.selectbox("Role", datasets.SPLITS, format_func={"train": "train pool", "seed": "seed", "test": "test"}.get)
subject = c3.text_input("Subject for rows without one", placeholder="e.g. 한국사 (optional)")
# tall enough for the placeholder's three lines (68 px, the smallest, cut the third)
mapping_text = st.text_area("Column mapping for generic files (FIELD=COLUMN per line)", height=116,
                            placeholder="question=stem\nchoices=A,B,C,D\nanswer=label")


def source_path() -> tuple[Path, str] | None:
    saved = saved_upload(upload, "data-import")  # once per file, not on every rerun; replaced files removed
    if saved is not None:
        return saved, upload.name
    if path_text.strip():
        p = Path(path_text.strip()).expanduser()
        return p, p.name
    return None


src = source_path()
if src:
    path, label = src
    mapping = run_action(lambda: parse_mapping([ln for ln in mapping_text.splitlines() if ln.strip()]))
    parsed = run_action(lambda: parse_file(path, fmt, mapping)) if mapping is not None else None
    if parsed:
        name = st.text_input("Dataset name", value=Path(label).stem)
        st.write(f"**{plural(len(parsed.records), 'question')}** parsed as **{parsed.format}**"
                 + (f", **{len(parsed.issues)}** bad row(s)" if parsed.issues else ""))
        for note in parsed.notes:  # e.g. control characters removed: said, never silent
            st.info(f"Cleaned: {label_text(note)}.")
        if parsed.issues:
            st.warning("Bad rows: the file imports only if you choose to skip them.")
            st.dataframe([{"where": i.where, "problem": i.message} for i in parsed.issues],
                         hide_index=True, width="stretch")
        skip_bad = st.checkbox("Skip bad rows", value=False, disabled=not parsed.issues)
        with st.expander(f"Preview (first {min(3, len(parsed.records))} questions)", expanded=True):
            for r in parsed.records[:3]:
                st.caption(f"id {label_text(r.qid)} · {label_text(r.subject or subject or 'unknown subject')} · "
                           f"{'정답 ' + str(r.answer) if r.answer else '정답 없음'}"
                           + (f" · {r.points:g}점" if r.points else ""))
                show_question({"paragraph": r.paragraph, "question": r.question, "extra": r.extra,
                               "choices": r.choices, "points": r.points}, r.qid)
                st.divider()
        clicked = st.button("Import", type="primary")
        if clicked:
            result = run_action(lambda: datasets.import_parsed(
                store, parsed, name, split, source=label, sha256=sha256_of(path),
                subject=subject or None, skip_bad=skip_bad))
            if result and result.already:
                st.info(f"{label_text(label)} is already imported as {label_text(repr(name))}; nothing changed.")
            elif result:
                flash(f"Imported {result.imported} questions into {name!r}"
                      + (f"; skipped {len(result.skipped)} bad row(s): "
                         + "; ".join(str(i) for i in result.skipped)[:500] if result.skipped else "."))
                st.rerun()

# ---- browse -------------------------------------------------------------------------------
if sets:
    st.header("Browse")
    b1, b2, b3 = st.columns([2, 2, 3])
    chosen = b1.selectbox("Dataset", [s["name"] for s in sets])
    subjects = next(s["subjects"] for s in sets if s["name"] == chosen)
    subj = b2.selectbox("Subject", ["(all)", *subjects])
    query = b3.text_input("Search text or id")
    found = cached(_browse, store, chosen, query or None, None if subj == "(all)" else subj)
    page_size = 10
    pages = max(1, -(-len(found) // page_size))
    reveal = st.toggle("Show answers", value=False,
                       help="off: browse as a student would, answers hidden; on: the answer in each title and marked")
    page_no = st.number_input(f"{plural(len(found), 'question')} · page", 1, pages, 1) if pages > 1 else 1
    if pages <= 1:  # the count is always said, also when nothing matches
        st.caption(plural(len(found), "question") + (" match the search" if query else ""))
    for q in found[(page_no - 1) * page_size: page_no * page_size]:
        answer = (f" · 정답 {q['answer']}" if q["answer"] else " · 정답 없음") if reveal else ""
        points = f" · {q['points']:g}점" if q["points"] else ""
        with st.expander(f"{label_text(q['qid'])} · {label_text(q['subject'])}{points} — "
                         f"{label_text(q['question'], 60)}{answer}"):
            show_question(q, q["qid"], {q["answer"]: "정답"} if q["answer"] and reveal else None)

    st.header("Delete")
    d1, d2 = st.columns([3, 2])
    victim = d1.selectbox("Dataset to delete", [s["name"] for s in sets], key="victim")
    plan = run_action(lambda: cached(datasets.delete_plan, store, victim))
    if plan and plan.blockers:
        st.warning(f"{label_text(repr(victim))} cannot be deleted: used by {label_text('; '.join(plan.blockers))}. "
                   "Delete those first.")
    elif plan:
        st.caption(f"Deleting {label_text(repr(victim))} removes everything made from it: {', '.join(plan.lines())}.")
    sure = d2.checkbox(f"Yes, delete {label_text(repr(victim))} and everything made from it")
    if st.button("Delete dataset", disabled=not sure or not plan or bool(plan.blockers)):
        n = run_action(lambda: datasets.delete_dataset(store, victim))
        if n:
            flash(f"Deleted {victim!r} ({plan.counts.get('questions', 0)} questions"
                  + (f"; also {', '.join(x for x in plan.lines() if 'questions' not in x)}" if plan.total else "") + ").")
            st.rerun()

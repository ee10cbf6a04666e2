"""Shared page helpers: the process-wide store, safe text rendering, plain-words errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from core import pipeline
from core.config import db_path
from core.errors import CoreError, ImportFailed
from core.render import boxed_extra, choice_label, markdown_text, passage_blocks, stem
from core.store import Store


def use_navigation() -> None:
    """Route through app.py's st.navigation even though the folder is named pages/.

    Until st.navigation has run once in a process, Streamlit treats a pages/ folder as a legacy
    multipage app and may run a page file directly (no sidebar status, every file listed): that
    happens on the first request of a process when it asks for a page URL. A page run that way
    clears the flag, as st.navigation itself does, and reruns through app.py. (app.py itself must
    not call this before st.navigation: the rerun would swallow the click that started the run.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> Store:
    return Store(path)


def open_store() -> Store:
    """The one Store of this process (DESIGN.md §3). A store that cannot be opened (held by another
    process, damaged, newer than this code) stops the page with what happened and what to do."""
    try:
        return _open_store(str(db_path()))
    except CoreError as exc:
        st.error(text(exc.message) + (f"\n\n**Hint:** {text(exc.hint)}" if exc.hint else ""),
                 icon=":material/database:")
        st.stop()


@st.cache_resource(show_spinner=False)
def _query_cache() -> dict[tuple, Any]:
    return {}


def cached(fn: Callable[..., Any], store: Store, *args: Any) -> Any:
    """fn(store, *args), computed once per write to the store: the key holds store.writes, which
    every write through the Store bumps (this process is the store's only writer), so a page shows
    nothing older than the last write, and rerenders (every click, every tab) read nothing twice.
    The result is shared between sessions: read it, never change it in place."""
    token = store.__dict__.setdefault("_cache_token", object())  # this Store object (a reopened file: another)
    code = getattr(fn, "__code__", None)  # a page's own function: its file (pages run as __main__)
    key = (getattr(fn, "__module__", ""), code.co_filename if code else "", getattr(fn, "__qualname__", repr(fn)),
           token, args)
    memo = _query_cache()
    hit = memo.get(key)
    if hit is not None and hit[0] == store.writes:
        return hit[1]
    writes = store.writes  # read before: a write during fn leaves the entry stale, never wrongly fresh
    value = fn(store, *args)
    if len(memo) > 512:
        memo.clear()
    memo[key] = (writes, value)
    return value


def memo(key: tuple, fn: Callable[[], Any]) -> Any:
    """fn() once per `key`, for what a page knows has not changed when the key has not (a finished
    training run's curves: its id, state and last step). Shared between sessions: read only."""
    memo_ = _query_cache()
    full = ("memo", *key)
    if full not in memo_:
        if len(memo_) > 512:
            memo_.clear()
        memo_[full] = (None, fn())
    return memo_[full][1]


def get_store() -> Store:
    """For page files: make sure app.py routes, then the process's store."""
    use_navigation()
    return open_store()


def text(value: str | None) -> str:
    """Untrusted text (a question, a reply, a name) as Markdown that renders literally: no link, image,
    HTML, heading, list, emphasis, math or directive (core/render.py:markdown_text); lines kept."""
    return markdown_text(value).replace("\n", "  \n")


def label_text(value: Any, limit: int | None = None) -> str:
    """Untrusted data inside a label (expander, checkbox, caption, metric, button): one line, cut
    to `limit` characters, escaped as `text` is."""
    line = " ".join(str("" if value is None else value).split())
    if limit is not None and len(line) > limit:
        line = line[:limit] + "…"
    return markdown_text(line)


def table(rows: list[dict[str, Any]], **kwargs: Any) -> None:
    """st.table with every header and cell shown as text: st.table renders Markdown in both (a
    subject "[x](http://…)" would be a live link). Pages call this, never st.table (tests/test_layers.py)."""
    st.table([{label_text(k): label_text(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows],
             **kwargs)


def chart(fig: Any, where: Any = None, **kwargs: Any) -> Any:
    """st.plotly_chart of a copy whose every label is text (core/figures.py:escape_figure); `where`
    is a column or container to draw in. Pages call this, never st.plotly_chart (tests/test_layers.py).

    The copy is made once per figure object: a figure a page keeps (built through `cached` or `memo`)
    is escaped on its first render only (escaping rebuilds and validates the whole figure, a tenth of a
    second or more a chart). Such a figure is shared: never change it after it is drawn."""
    return (where or st).plotly_chart(escaped_figure(fig), **kwargs)


def escaped_figure(fig: Any) -> Any:
    """core/figures.py:escape_figure(fig), computed once per figure object (see `chart`)."""
    from core.figures import escape_figure

    memo_ = _query_cache()
    key = ("escaped-figure", id(fig))
    hit = memo_.get(key)
    if hit is not None and hit[1][0] is fig:  # the entry holds the figure: its id is never reused meanwhile
        return hit[1][1]
    out = escape_figure(fig)
    if len(memo_) > 512:
        memo_.clear()
    memo_[key] = (None, (fig, out))
    return out


def show_question(q: dict[str, Any], number: str | None = None, highlight: dict[int, str] | None = None) -> None:
    """A question laid out as on the exam paper; `highlight` marks choices (e.g. {3: "정답"})."""
    highlight = highlight or {}
    if q.get("paragraph"):
        with st.container(border=True):
            show_passage(q["paragraph"])
    st.markdown("**" + text(stem(q, number)) + "**")
    if q.get("extra"):
        with st.container(border=True):
            extra = q["extra"]
            show_passage(boxed_extra(extra))
    for i, choice in enumerate(q["choices"], 1):
        tag = highlight.get(i)
        line = f"{choice_label(i)} {text(choice)}"
        color = "green" if tag == "정답" else "orange"  # a wrong answer never looks like the key
        st.markdown(f":{color}[**{line}**] · {label_text(tag)}" if tag else line)


def show_passage(value: str) -> None:
    """Passage text, with its survey tables ("| 구분 | 운동 | … |" rows) drawn as tables.

    The rows are parsed in core/render.py:passage_blocks, never passed on as HTML or Markdown: every
    cell is escaped like any dataset text, since st.table renders Markdown in cells.
    """
    for kind, block in passage_blocks(value):
        if kind == "table":
            table([dict(zip(block["columns"], row)) for row in block["rows"]], hide_header=False)
        else:
            st.markdown(text(block))


def run_action(fn: Callable[[], Any], success: str | Callable[[Any], str] | None = None) -> Any:
    """Run a core call: every page action goes through here.

    Success: shows `success` (if given) and returns the call's result — True when the call returns
    None, so `if run_action(...)` is true exactly when the action worked. Failure: shows the one-line
    error with its hint (a CoreError; unexpected errors add a folded traceback) and returns None.
    """
    try:
        result = fn()
    except ImportFailed as exc:
        st.error(text(exc.message))
        if exc.issues:
            st.dataframe([{"where": i.where, "problem": i.message} for i in exc.issues],
                         hide_index=True, width="stretch")
        if exc.hint:
            st.caption(f"Hint: {text(exc.hint)}")
        return None
    except CoreError as exc:  # messages quote names and cells of the data: shown as text
        st.error(text(exc.message + (f" — {exc.hint}" if exc.hint else "")))
        return None
    except Exception as exc:  # unexpected: a plain line, the traceback folded away (keys masked in both)
        import traceback

        from core.secrets import redact

        st.error(text(redact(f"Unexpected error: {type(exc).__name__}: {exc}")))
        with st.expander("Details"):
            st.code(redact("".join(traceback.format_exception(exc))), language=None)
        return None
    if success:
        st.success(text(success(result) if callable(success) else success))
    return True if result is None else result


def estimate_caption(fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The cost estimate line shown before a run starts (core/steps/solve/solve.py:estimate_text), or its error."""
    from core.steps.solve.solve import estimate_text

    est = run_action(fn)
    if isinstance(est, dict):
        st.caption(estimate_text(est) + ".")
        return est
    return None


@st.cache_resource(show_spinner=False)
def _upload_dirs() -> list[str]:
    """Every upload folder this process made, removed when it exits (a session that just closes
    its tab never replaces or clears its upload)."""
    import atexit
    import shutil

    dirs: list[str] = []
    atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in dirs])
    return dirs


def saved_upload(upload: Any, key: str) -> Any:
    """Save an uploaded file once per file (not on every rerun) and return its path.

    The file lives in one temporary folder per session and widget; a new upload replaces (deletes)
    the previous one, and no upload removes what was saved.
    """
    import shutil
    import tempfile
    from pathlib import Path

    state = st.session_state.setdefault(f"_upload-{key}", {"id": None, "dir": None})
    file_id = getattr(upload, "file_id", None) or (upload and f"{upload.name}:{upload.size}")
    if state["id"] == file_id and state["dir"] and (upload is None or Path(state["dir"], Path(upload.name).name).exists()):
        return Path(state["dir"], Path(upload.name).name) if upload is not None else None
    if state["dir"]:
        shutil.rmtree(state["dir"], ignore_errors=True)
    state.update(id=None, dir=None)
    if upload is None:
        return None
    folder = tempfile.mkdtemp(prefix="csat-upload-")
    _upload_dirs().append(folder)
    path = Path(folder, Path(upload.name).name)
    path.write_bytes(upload.getvalue())
    state.update(id=file_id, dir=folder)
    return path


def flash(message: str | None = None) -> None:
    """Keep a success message across st.rerun(): set it with a message, show it with none. The
    message is plain text (it names datasets, sets, models): shown escaped, so callers pass it raw."""
    if message:
        st.session_state["_flash"] = message
    elif "_flash" in st.session_state:
        st.success(text(st.session_state.pop("_flash")))


def empty_state(what_it_does: str, needs: str, issue: str | None = None) -> None:
    st.info(f"{what_it_does}\n\n**Needs first:** {needs}" + (f"\n\n_Coming in {issue}._" if issue else ""))


def sidebar_status(store: Store) -> None:
    with st.sidebar:
        st.caption("Pipeline")
        for row in cached(pipeline.status, store):
            mark = ":material/check_circle:" if row["holds"] else ":material/radio_button_unchecked:"
            st.caption(f"{mark} {row['step']}: {row['holds'] or '—'}")
        # The file name only (a long path wrapped mid-word); the full path in the tooltip.
        st.caption(f"Store: {text(Path(store.path).name)}", help=f"DuckDB file: {text(str(store.path))}")


def job_panel(store: Store, key: str, kind: str | None = None,
              on_done: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
    """Live progress of the job whose id is in st.session_state[key], with a cancel button.

    Polls once a second in a fragment, so the rest of the page stays usable while the job runs;
    when the job ends the whole page reruns once to show its results. A job of `kind` still running
    in this process is picked up after a browser reload or from another tab.
    """
    from core import jobs

    if not st.session_state.get(key) and kind:
        running = [j for j in jobs.list_jobs(store, kind, limit=5) if j["state"] in jobs.ACTIVE]
        if running:
            st.session_state[key] = running[0]["id"]
    if not st.session_state.get(key):
        return None

    @st.fragment(run_every=1.0)
    def panel() -> None:
        job = jobs.get_job(store, st.session_state[key])
        if job is None:
            return
        total, done = job["total"] or 0, job["done"] or 0
        tokens = (job["input_tokens"] or 0) + (job["output_tokens"] or 0)
        # no "0 tokens" for a job that calls no model (embedding, a map): only a count that was kept
        bits = [f"{done}/{total}", f"{job['errors'] or 0} errors"] + ([f"{tokens:,} tokens"] if tokens else [])
        if job.get("est_cost_usd") is not None:
            bits.append("no API cost" if job["est_cost_usd"] == 0 else f"≈ ${job['est_cost_usd']:.4f}")
        if job["state"] == "running" and job.get("message"):
            bits.insert(0, job["message"])  # the phase a step is in (embedding, compiling, projecting…)
        elif job["state"] == "running" and done == 0 and not (job["input_tokens"] or job["output_tokens"]):
            bits.insert(0, "loading model / waiting for the first reply…")  # a local model loads first
        if job.get("eta_s") is not None and job["state"] == "running":
            bits.append(f"ETA {job['eta_s']:.0f} s")
        st.progress(min(done / total, 1.0) if total else 0.0,
                    text=f"{label_text(job['label'])} — {job['state']} · " + " · ".join(bits))
        if job["state"] in jobs.ACTIVE:
            if st.button("Cancel", key=f"{key}-cancel"):
                jobs.cancel(job["id"])
                st.toast("Cancelling: finished requests are kept; run again to resume.")
            return
        if job["state"] == "done":
            res = job.get("result") if isinstance(job.get("result"), dict) else {}
            sent = (f": {res['requests_sent']} request(s) sent, {res['cached']} served from the cache"
                    if "requests_sent" in res and "cached" in res else f": {done}/{total}")
            st.success(text(job["message"] or f"Done{sent}."))  # a job's message names its data
        elif job["state"] == "cancelled":
            st.warning(text(job["message"] or "Cancelled; run again to resume (finished work is cached)."))
        else:
            st.error(text(job["message"] or job["state"]))
            if job.get("traceback"):
                with st.expander("details"):
                    st.code(job["traceback"], language=None)
        if st.button("Dismiss", key=f"{key}-dismiss", help="hide this finished job's panel"):
            st.session_state.pop(key, None)  # the message stays until here, whatever the rest of the page does
            st.rerun(scope="app")
        if st.session_state.get(f"{key}-seen") != job["id"]:
            st.session_state[f"{key}-seen"] = job["id"]
            if on_done:
                on_done(job)
            st.rerun(scope="app")

    panel()
    return jobs.get_job(store, st.session_state[key])


def config_form(cls: type, key: str, *, choices: dict[str, list[Any]] | None = None,
                defaults: dict[str, Any] | None = None, exclude: tuple[str, ...] = (),
                submit: str = "Start", columns: int = 3, fixed: dict[str, Any] | None = None,
                disabled: bool = False, labels: dict[str, dict[Any, str]] | None = None,
                adjust: Callable[[dict[str, Any], set[str]], dict[str, Any]] | None = None,
                live: bool = False) -> Any | None:
    """A form built from a step's config class (core/runs.py:StepConfig): one widget per field.

    choices: field -> allowed values (datasets, model names) for a selectbox; Literal fields get
    theirs from the type; bool → checkbox; int/float → number input with the field's bounds;
    list/dict → one item (or KEY=VALUE) per line. A field's `title` is its label (else its name).
    fixed: values chosen elsewhere on the page (e.g. the test set): no widget, merged when submitted.
    labels: field -> {value: text shown} for selectboxes (a run id shown with what it holds; a key
    None names the empty choice, e.g. "(all subjects)").
    adjust(values, changed): a last word on the values, given the fields the user changed from the
    shown defaults (e.g. lengths the user did not touch follow the one they did).
    live: plain widgets and a button instead of an st.form, so every change reruns the page and what
    is shown under the form (a cost estimate) follows the values on screen, not the last submitted.
    Returns the validated config when submitted and valid, else None (a problem shows as one line).
    """
    return _config_form(cls, key, choices=choices, defaults=defaults, exclude=exclude, submit=submit,
                        columns=columns, fixed=fixed, disabled=disabled, labels=labels, adjust=adjust,
                        live=live)[0]


def _config_form(cls: type, key: str, *, choices: dict[str, list[Any]] | None = None,
                 defaults: dict[str, Any] | None = None, exclude: tuple[str, ...] = (),
                 submit: str = "Start", columns: int = 3, fixed: dict[str, Any] | None = None,
                 disabled: bool = False, labels: dict[str, dict[Any, str]] | None = None,
                 adjust: Callable[[dict[str, Any], set[str]], dict[str, Any]] | None = None,
                 live: bool = False) -> tuple[Any | None, dict[str, Any]]:
    """config_form, and the values the widgets hold now (with `fixed`), submitted or not."""
    import typing

    from core.errors import CoreError

    choices, defaults, fixed = choices or {}, defaults or {}, fixed or {}
    exclude = (*exclude, *fixed)
    values: dict[str, Any] = {}
    shown_defaults: dict[str, Any] = {}
    with st.container(key=f"{key}-live") if live else st.form(key):  # the key: a CSS class to find it by
        cols = st.columns(columns)
        for i, (name, field) in enumerate(f for f in cls.model_fields.items() if f[0] not in exclude):
            ann = field.annotation
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            optional = type(None) in typing.get_args(ann)
            base = args[0] if optional and len(args) == 1 else ann
            origin = typing.get_origin(base)
            default = defaults.get(name, None if field.is_required() else field.get_default(call_default_factory=True))
            shown_defaults[name] = default
            label, help_ = field.title or name.replace("_", " ").capitalize(), field.description
            wkey = f"{key}-{name}"
            with cols[i % columns]:
                if name in choices or origin is typing.Literal:
                    opts = list(choices.get(name) or typing.get_args(base))
                    if optional:
                        opts = [None, *opts]
                    index = opts.index(default) if default in opts else 0
                    shown = (labels or {}).get(name, {})  # e.g. a run id shown with its pool and size
                    values[name] = st.selectbox(label, opts, index=index, help=help_, key=wkey,
                                                format_func=lambda v, shown=shown: shown.get(v, "(none)" if v is None
                                                                                             else str(v)))
                elif base is bool:
                    values[name] = st.checkbox(label, value=bool(default), help=help_, key=wkey)
                elif base in (int, float):
                    # pydantic keeps Field(ge=…, le=…) as metadata objects with that one attribute
                    bounds = {k.capitalize(): getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt")
                              if getattr(m, k, None) is not None}
                    lo = bounds.get("Ge", bounds.get("Gt"))
                    hi = bounds.get("Le", bounds.get("Lt"))
                    if optional:
                        raw = st.text_input(label, "" if default is None else str(default), help=help_, key=wkey,
                                            placeholder=(labels or {}).get(name, {}).get(None, "(model default)"))
                        values[name] = raw.strip() or None
                    else:
                        values[name] = st.number_input(
                            label, value=base(default) if default is not None else base(lo or 0),
                            min_value=base(lo) if lo is not None else None,
                            max_value=base(hi) if hi is not None else None,
                            step=1 if base is int else None, format=None if base is int else "%g",
                            help=help_, key=wkey)
                elif origin in (list, dict):
                    shown = ("\n".join(f"{k}={v}" for k, v in default.items()) if isinstance(default, dict)
                             else "\n".join(map(str, default or [])))
                    # tall enough for the default's lines (a hidden 4th line reads as "not included"), ≤ 6
                    height = 20 * min(max(shown.count("\n") + 1, 2), 6) + 56  # 19.6 px a line, ~54 px around
                    raw = st.text_area(label, shown, help=(help_ or "") + " — one per line", key=wkey, height=height)
                    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
                    values[name] = (dict(ln.split("=", 1) for ln in lines if "=" in ln) if origin is dict else lines)
                else:
                    raw = st.text_input(label, "" if default is None else str(default), help=help_, key=wkey)
                    values[name] = raw.strip() or (None if optional else "")
        pressed = (st.button(submit, type="primary", disabled=disabled, key=f"{key}-submit") if live
                   else st.form_submit_button(submit, type="primary", disabled=disabled))
    current = values | fixed
    if not pressed:
        return None, current
    if adjust:
        changed = {k for k, v in values.items() if v != shown_defaults.get(k)}
        values = adjust(values, changed)
    try:
        return cls.parse({k: v for k, v in values.items() if v is not None or k in cls.model_fields} | fixed), current
    except CoreError as exc:
        st.error(text(exc.message + (f" — {exc.hint}" if exc.hint else "")))
        return None, current


def launch(job_key: str, start: Callable[[], str | None]) -> str | None:
    """Start a background job (the call returns its id) and keep the id in st.session_state[job_key],
    where job_panel finds it; a failure shows as run_action shows it. Returns the id or None."""
    job = run_action(start)
    if isinstance(job, str):
        st.session_state[job_key] = job
        return job
    return None


def step_runner(store: Store, cls: type, start: Callable[[Store, Any], str], *, key: str, kind: str,
                form_key: str | None = None, preview: Callable[[dict[str, Any]], None] | None = None,
                check: Callable[[Any], str | None] | None = None,
                confirm: Callable[[Any], bool] | None = None,
                on_start: Callable[[str], None] | None = None, **form: Any) -> dict[str, Any] | None:
    """The one block every step page has: config form → start job → job id in session state → job panel.

    cls/start: the step's config class and its start_job(store, config) (returns a job id).
    key: names the job's state (st.session_state[f"{key}-job"]); the form's widgets are
    f"{form_key or key + '-form'}-<field>". kind: the job kind whose running job the panel picks up.
    form: config_form's options (choices, defaults, fixed, submit, columns, labels, live, …).
    preview(values): what the page shows under the form for the values on screen (a cost estimate,
    warnings); with live=True those are the values before anything is pressed.
    check(config): a reason the submitted config cannot start (shown as an error), or None.
    confirm(config): a second stage: the submitted config is kept and confirm shows it (an estimate)
    and returns True when the user starts it (its own button).
    on_start(job_id): what else changes on the page when a job starts.
    Returns the job shown in the panel (None when there is none).
    """
    job_key, pending_key = f"{key}-job", f"{key}-pending"
    cfg, current = _config_form(cls, form_key or f"{key}-form", **form)
    if preview:
        preview(current)
    problem = check(cfg) if cfg is not None and check else None
    if problem:
        st.error(text(problem))
        cfg = None
    if confirm:
        if cfg is not None:
            st.session_state[pending_key] = cfg
        pending = st.session_state.get(pending_key)
        cfg = pending if pending is not None and confirm(pending) else None
    if cfg is not None and launch(job_key, lambda: start(store, cfg)):
        st.session_state.pop(pending_key, None)
        if on_start:
            on_start(st.session_state[job_key])
    return job_panel(store, job_key, kind=kind)


def made_by(run: dict[str, Any] | None) -> None:
    """The 'made by' line under every result: run id, config hash, code version, settings."""
    if run:
        from core.runs import made_by as line

        st.caption(text(line(run)))

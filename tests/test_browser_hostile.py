"""Hostile data in a real browser: questions, choices, subjects and model replies full of Markdown,
HTML, LaTeX, Streamlit directives, setext headings, bidi and zero-width marks are shown as the
characters they are on Data, Mine, Review, Augment, Evaluate and Visualise (README "Data is shown as text").

The store is filled through core functions before the dashboard starts: a pool and a test set
imported from JSONL, a mining run and an evaluation by loopback models whose replies are hostile
too, an augment run whose blueprints are hostile (tests/augmentdata.py's request markers), and a
map of both sets from hand-made vectors (tests/test_map.py:inject). Every hostile URL points at a
127.0.0.1 port this test listens on: the browser must never ask it for anything (an image that loads
is a tracking pixel), and no page may hold a link or an image from the data.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.dashboard import browser_page, chromium_path, exceptions, main_text, running_dashboard, wait_idle

pytestmark = pytest.mark.browser


class Listener:
    """The attacker's host: counts every request that reaches it."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile(tag: str, host: str) -> str:
    """One line of every inline attack, each URL naming where it came from."""
    return (f"{tag} [link]({host}/{tag}-md) ![x]({host}/{tag}-img.png) <img src={host}/{tag}-tag.png> "
            f'<a href="{host}/{tag}-a">a</a> {host}/{tag}-auto **bold** $x^2$ :red[red] :material/home:')


def subject(host: str) -> str:
    return f'국어 [s]({host}/subject) <a href="{host}/subject-a">s</a> <b>b</b>'


def reply(host: str, tag: str, answer: int) -> str:
    return f"{hostile(tag, host)}\n제목처럼\n===\n# 머리\n- 목록\n근거를 찾았다.\n{{\"Answer\":\"{answer}\"}}"


def questions(host: str, prefix: str) -> list[dict]:
    return [{"id": f"{prefix}{k}", "subject": subject(host) if k == 1 else "윤리",
             "paragraph": f"지문 {prefix}{k}: {hostile(f'{prefix}{k}-passage', host)}\n밑줄\n===\n다음 줄",
             "question": f"{prefix}{k} {hostile(f'{prefix}{k}-question', host)} 옳은 것은?",
             "choices": [f"① {hostile(f'{prefix}{k}-choice', host)}", "오른쪽\u202e왼쪽\u202c 표시",
                         "폭\u200b없는\u200d공백", "$$\\frac{1}{2}$$", "평범한 선지"],
             "answer": 1, "points": 2} for k in (1, 2)]


def fill_store(db: Path, tmp: Path, host: str) -> None:
    from core import embeddings, models
    from core.jobs import JobContext
    from core.steps.augment import augment
    from core.steps.augment.augment import AugmentConfig
    from core.steps.data import datasets
    from core.steps.evaluate.eval_run import EvalConfig
    from core.steps.evaluate.eval_run import run as run_step
    from core.steps.mine import mining
    from core.steps.visualise import mapping
    from core.steps.visualise.mapping import MapConfig
    from core.store import Store
    from tests.augmentdata import FAST, write_jsonl
    from tests.loopback import Loopback, Reply

    def solver(answer: int):
        return lambda n, body: Reply(text=reply(host, f"reply{answer}", answer))

    def writer(n: int, body: dict) -> Reply:
        text = json.dumps(body, ensure_ascii=False)
        if "세 가지를 분석하세요" in text:
            return Reply(text=json.dumps({"structure": hostile("structure", host), "golden_steps": ["발문 확인"],
                                          "error_pattern": hostile("error", host)}, ensure_ascii=False))
        if "[전이 대상]" in text:
            return Reply(text=json.dumps({
                "passage": f"증강 지문 {n}: {hostile('aug-passage', host)}\n밑줄\n===",
                "question": f"[증{n}] {hostile('aug-question', host)} 옳은 것은?",
                "choices": [f"{hostile('aug-choice', host)} {i}" for i in range(1, 6)], "answer": 1,
                "chosen": reply(host, "chosen", 1), "rejected": reply(host, "rejected", 2),
                "target": hostile("target", host)}, ensure_ascii=False))
        return Reply(text=reply(host, "resolve", 1))

    s = Store(db)
    datasets.import_file(s, write_jsonl(tmp / "pool.jsonl", questions(host, "p")), "pool", "train", fmt="generic")
    datasets.import_file(s, write_jsonl(tmp / "exam.jsonl", questions(host, "t")), "exam", "test", fmt="generic")
    with Loopback("openai", solver(1)) as t, Loopback("openai", solver(2)) as st, Loopback("gemini", writer) as w:
        models.add_model(s, "teacher", "openai", "big", base_url=t.base_url, params=FAST)
        models.add_model(s, "student", "openai", "small", base_url=st.base_url, params=FAST)
        models.add_model(s, "writer", "gemini", "gemini-2.5-flash", base_url=w.base_url, params=FAST)
        run = mining.run(s, mining.MiningConfig(pool="pool", teacher="teacher", student="student"))
        assert run["hard_negatives"] == 2, run
        augment.run(s, AugmentConfig(mining_run=run["run"], teacher="writer", per_seed=1))
        for who in ("student", "teacher"):  # A wrong, B right: both test questions are "fixed"
            run_step(s, EvalConfig(dataset="exam", model=who), JobContext.local())
    e = np.eye(8)  # hand-made vectors stored as embeddings of each item's parts (no embedder runs)
    vecs = {"p1": e[0], "p2": e[1], "t1": e[0] + 0.3 * e[2], "t2": e[3]}
    s.executemany("INSERT INTO embeddings (text_hash, embedder, dim, vector) VALUES (?, ?, ?, ?)",
                  [(embeddings.text_hash(t), "hand-made", 8,
                    (vecs[it["id"]] / np.linalg.norm(vecs[it["id"]])).astype("<f4").tobytes())
                   for name in ("pool", "exam") for it in mapping.items(s, name) for t in it["parts"]])
    mapping.run(s, MapConfig(sets=["pool", "exam"], embedder="hand-made"))
    s.close()


# Links and images the page holds: from the data (our port) or to anywhere off this origin.
OFFENDERS = """([port]) => {
  const bad = [];
  for (const el of document.querySelectorAll('[href], [src], [srcset]')) {
    for (const attr of ['href', 'xlink:href', 'src', 'srcset']) {
      const v = el.getAttribute(attr);
      if (!v) continue;
      if (v.includes(':' + port)) bad.push(`${el.tagName} ${attr}=${v}`);
      if (['IMG', 'image', 'IMAGE', 'SOURCE', 'IFRAME', 'VIDEO', 'AUDIO'].includes(el.tagName)
          && !/^(data:|blob:|\\/|#)/.test(v) && !v.startsWith(location.origin)) bad.push(`${el.tagName} ${attr}=${v}`);
    }
  }
  const main = document.querySelector('[data-testid=stMain]');
  for (const a of main.querySelectorAll('a[href]')) {  // st.markdown links in the main area: none off-site
    const v = a.getAttribute('href');
    if (!v.startsWith('/') && !v.startsWith('#') && !v.startsWith(location.origin)) bad.push(`A href=${v}`);
  }
  // Markup the data would make: maths, links in charts, and elements holding exactly an attack's words
  // (the pages' own bold wraps whole questions, whose text then shows the literal "**bold**").
  for (const k of main.querySelectorAll('.katex, .js-plotly-plot svg a')) bad.push(`${k.tagName}`);
  for (const k of main.querySelectorAll('h1, h2, h3, h4, h5, h6, li, strong, em, del, code, blockquote, span')) {
    const t = k.textContent.trim();
    if (['bold', 'red', 'link', 'x^2', 'home'].includes(t) || (/^H|^LI$/.test(k.tagName)
        && /제목처럼|밑줄|머리|목록/.test(t))) bad.push(`${k.tagName}: ${t.slice(0, 80)}`);
  }
  return bad;
}"""


def plain(page) -> str:
    """The main area's text as a reader copies it: without the invisible word joiners."""
    return main_text(page).replace("\u2060", "")


def check(page, what: str, must_read: list[str], tmp: Path) -> None:
    wait_idle(page)
    assert not exceptions(page), (what, exceptions(page))
    bad = page.evaluate(OFFENDERS, [str(page.hostile_port)])
    assert bad == [], (what, bad)
    body = plain(page)
    for literal in must_read:
        assert literal in body, (what, literal, body[:3000])
    page.screenshot(path=str(tmp / f"hostile-{what}.png"), full_page=True)


def test_hostile_data_is_shown_as_text_on_every_page(tmp_path, monkeypatch):
    chromium_path()
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")  # the loopback writer
    listener = Listener()
    host = listener.url
    seen = []  # every request the browser makes to the attacker's host
    try:
        fill_store(tmp_path / "hostile.duckdb", tmp_path, host)
        with running_dashboard(tmp_path / "hostile.duckdb") as url, browser_page() as page:
            page.hostile_port = listener.port
            page.on("request", lambda r: seen.append(r.url) if f":{listener.port}" in r.url else None)

            page.goto(f"{url}/data")
            wait_idle(page)
            subject_cell = f'국어 [s]({host}/subject) <a href="{host}/subject-a">s</a> <b>b</b>'
            check(page, "data-tables", [subject_cell], tmp_path)  # st.table cells (old: live link, bold)
            # Plotly draws its axes after Streamlit is idle: wait for the ticks (the event), then read them
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .xtick text').length > 0",
                                   timeout=60_000)
            ticks = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot .xtick text')]"
                                  ".map(t => t.textContent)")
            assert any('<a href="' in t and "<b>b</b>" in t for t in ticks), ticks  # Plotly: tags as text
            page.locator("[data-testid=stExpander] summary").filter(has_text="p1").first.click()
            check(page, "data", [f"![x]({host}/p1-question-img.png)", f"[link]({host}/p1-passage-md)",
                                 f"<img src={host}/p1-choice-tag.png>", "밑줄\n===", ":red[red] :material/home:",
                                 "$x^2$", "**bold**", "$$\\frac{1}{2}$$", "오른쪽⟨U+202E⟩왼쪽⟨U+202C⟩ 표시"], tmp_path)

            page.goto(f"{url}/mine")
            check(page, "mine", [subject_cell, f"![x]({host}/reply1-img.png)", f"![x]({host}/reply2-img.png)",
                                 "제목처럼\n===", "# 머리", "- 목록", "-question-img.png)", "-passage-md)"], tmp_path)

            page.goto(f"{url}/review")
            check(page, "review", [f"![x]({host}/aug-question-img.png)", f"<img src={host}/aug-choice-tag.png>",
                                   f"[link]({host}/chosen-md)", f'<a href="{host}/rejected-a">a</a>',
                                   f"{host}/target-auto"], tmp_path)

            page.goto(f"{url}/augment")
            check(page, "augment", [f"![x]({host}/aug-question-img.png)", f"<img src={host}/rejected-tag.png>",
                                    f"[link]({host}/chosen-md)"], tmp_path)

            page.goto(f"{url}/evaluate")
            wait_idle(page)
            if "fixed (0)" in plain(page):  # the questions B got right and A wrong, whichever A is
                page.get_by_text("broken (2)").click()
            check(page, "evaluate", [subject_cell, f"![x]({host}/t1-question-img.png)",
                                     f"![x]({host}/reply1-img.png)", f"![x]({host}/reply2-img.png)"], tmp_path)

            page.goto(f"{url}/visualise")
            wait_idle(page)
            page.get_by_label(re.compile("open by id", re.I)).fill("exam / t1")
            page.keyboard.press("Enter")
            check(page, "visualise", [f"![x]({host}/t1-passage-img.png)", "밑줄\n==="], tmp_path)
            page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(p => p.data)",
                                   timeout=60_000)
            hover = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                                  ".flatMap(p => (p.data || []).flatMap(t => (t.customdata || []).flat()))")
            assert any("&lt;a href=" in str(v) for v in hover) and not any("<a " in str(v) for v in hover), hover
            page.wait_for_timeout(500)  # a late image request would land here
    finally:
        listener.close()
    assert seen == [] and listener.hits == [], (seen, listener.hits)

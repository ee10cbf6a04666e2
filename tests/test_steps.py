"""The step registry (core/steps): one package per step, and the one list that the navigation, the
CLI, the pipeline overview and the delete cascade read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from core import cascade
from core.steps import by_name, steps
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
SHARED_LABELS = {"steps", "registry"}  # cascade lines for the shared run records and the model registry


def test_each_step_package_has_one_name_for_package_page_and_cli():
    names = [s.name for s in steps()]
    packages = sorted(p.parent.name for p in (ROOT / "core/steps").glob("*/__init__.py"))
    assert sorted(names) == packages  # every package is a step, every step a package
    words = names + [a for s in steps() for a in s.aliases]
    assert len(words) == len(set(words))
    assert [s.order for s in steps()] == sorted(s.order for s in steps())
    for s in steps():
        assert (ROOT / "core/cli" / f"{s.name}.py").exists(), s.name
        assert (ROOT / "pages" / f"{s.name}.py").exists() == s.page, s.name
    # every page file is a step's, Home's or Settings'
    pages = {p.stem for p in (ROOT / "pages").glob("*.py")} - {"_ui", "home", "settings", "__init__"}
    assert pages == {s.name for s in steps() if s.page}
    assert by_name("map").name == "visualise" and by_name("eval").name == "evaluate"
    assert by_name("pairs").name == "review"


def test_the_navigation_is_the_registry():
    """app.py lists Home, the page steps in flow order, Settings: the titles and URLs of the registry."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    for s in steps():
        if s.page:  # each registered page is reachable through the navigation app.py built
            at.switch_page(f"pages/{s.name}.py")
            at.run()
            assert not at.exception, s.name
    src = (ROOT / "app.py").read_text(encoding="utf-8")
    assert "pages/data.py" not in src  # no second list of pages
    home = [s for s in steps() if s.page]
    assert [s.title for s in home] == ["Data", "Mine", "Augment", "Review", "Train", "Evaluate", "Visualise"]


def test_cli_nouns_and_their_earlier_names():
    from core.cli import ALIASES, NOUNS

    assert {s.name for s in steps()} <= set(NOUNS)
    assert ALIASES == {"pairs": "review", "eval": "evaluate", "map": "visualise"}
    for old, new in ALIASES.items():
        a = subprocess.run([sys.executable, "-m", "core", old, "--help"], capture_output=True, text=True, cwd=ROOT)
        b = subprocess.run([sys.executable, "-m", "core", new, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert a.returncode == b.returncode == 0, a.stderr
        assert a.stdout.replace(f"core {old}", f"core {new}") == b.stdout
    root = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    assert "visualise" in root and "\n  map " not in root  # the earlier names work but are not listed


def test_the_cascade_names_registered_steps_and_each_table_its_owner_declares():
    owner = {t: s.name for s in steps() for t in s.tables}
    lines = cascade.DATASET + cascade.MODEL
    wrong = [(label, table) for label, table, _ in lines
             if label not in SHARED_LABELS and (label not in {s.name for s in steps()} or owner.get(table) != label)]
    assert wrong == []
    # every table a step declares exists once its migrations ran, and the cascade knows it
    store = Store()
    try:
        tables = {r["table_name"] for r in store.rows("SELECT table_name FROM information_schema.tables")}
    finally:
        store.close()
    declared = {t for _, t, _ in lines} | set(cascade.INDEPENDENT)
    assert set(owner) <= tables and set(owner) <= declared


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_a_step_imports_only_steps_before_it_in_the_flow():
    """Data flows one way: mining reads solve and data, review reads augment's gates, evaluate reads
    train's template check; no step reaches into a later one (every import counts, even deferred)."""
    order = {s.name: s.order for s in steps()}
    wrong = []
    for s in steps():
        for p in (ROOT / "core/steps" / s.name).rglob("*.py"):
            for n in _imports(p):
                parts = n.split(".")
                if parts[:2] == ["core", "steps"] and len(parts) > 2 and parts[2] in order:
                    if order[parts[2]] > s.order:
                        wrong.append(f"{p.relative_to(ROOT)} imports {n}")
    assert wrong == []


def test_listing_the_steps_loads_no_step_module():
    """The registry is read by `--help`, the sidebar and app.py: it loads each package's face only."""
    code = ("import sys; from core.steps import steps; steps(); "
            "print(sorted(m for m in sys.modules if m.startswith('core.') and m.count('.') > 2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"

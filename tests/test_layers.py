"""The layers (core/README.md), checked on the source with `ast`: no import cycle, nothing below a layer
imports above it, core never imports pages or Streamlit, pages never import the CLI, test modules do
not import each other, and heavy libraries load only inside the functions that use them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# bottom (0) to top (4): a module may import its own layer and the layers below, never above.
BOTTOM = ("core.migrations", "core.errors", "core.config", "core.secrets")
LAYERS = {0: "migrations, errors, config, secrets", 1: "store", 2: "shared machinery (core/*)",
          3: "steps (core/steps/<step>/ and the registry)", 4: "over the steps (recipes, batch files, pipeline)",
          5: "cli", 6: "pages"}
# Above the steps: what runs or reads several of them.
OVER_STEPS = ("core.recipe", "core.recipe_run", "core.recipe_bundle", "core.recipe_view", "core.batchfile",
              "core.raymine", "core.pipeline")
HEAVY = ("torch", "transformers", "trl", "peft", "umap", "sentence_transformers", "scipy", "plotly", "pandas")
# Modules the CLI loads for --help (the nouns and what they import at module level) must not import
# these at module level. Checked for the modules of the existing steps' CLI.
HELP_PATH = ("core.cli", "core.cli.options", "core.cli.solve", "core.cli.mine", "core.cli.evaluate", "core.cli.data",
             "core.cli.models", "core.cli.jobs", "core.steps.solve.solve", "core.steps.mine.mining", "core.steps.evaluate.eval_run", "core.runs",
             "core.jobs", "core.steps.data.datasets", "core.models", "core.engine", "core.generations", "core.steps.mine.judge",
             "core.steps.mine.classify", "core.stats", "core.store")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    files = [p for d in ("core", "pages") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]
    return {module_name(p): p for p in files}


def imports(path: Path, module_level_only: bool) -> set[str]:
    """Absolute names imported; module_level_only skips function bodies and `if TYPE_CHECKING:`."""
    known = set(sources())
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if module_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                subs = {f"{child.module}.{a.name}" for a in child.names}
                out.update(subs)  # `from pkg import submodule` needs the submodule, not the package's body
                if not subs <= known:
                    out.add(child.module)
            visit(child, top)

    visit(tree, True)
    return out


def layer(name: str) -> int:
    if name.startswith(BOTTOM):
        return 0
    if name in ("core.store", "core.store_owner"):
        return 1
    if name == "core.cli" or name.startswith(("core.cli.", "core.__main__")):
        return 5
    if name in OVER_STEPS:
        return 4
    if name == "core.steps" or name.startswith("core.steps."):
        return 3
    if name.startswith("core"):
        return 2
    return 6  # pages, app


def own(names: set[str], mods: dict[str, Path]) -> set[str]:
    """The project's modules among imported names (`from core import x` names core.x, not core)."""
    found = {n for n in names if n in mods and n != "core"}
    return found


def test_no_import_cycle():
    """Every import counts: inside functions and under TYPE_CHECKING too (a deferred import hides a
    circle from Python, not from whoever has to change the code)."""
    mods = sources()
    graph = {m: own(imports(p, module_level_only=False), mods) - {m} for m, p in mods.items()}
    seen: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles = []

    def dfs(m: str, path: list[str]) -> None:
        seen[m] = 1
        for n in sorted(graph[m]):
            if seen.get(n) == 1:
                cycles.append(path[path.index(n):] + [n] if n in path else [m, n])
            elif n not in seen:
                dfs(n, [*path, n])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            dfs(m, [m])
    assert cycles == []


def test_nothing_imports_a_layer_above_it():
    mods = sources()
    wrong = []
    for m, p in mods.items():
        for n in own(imports(p, module_level_only=False), mods):
            if layer(n) > layer(m):
                wrong.append(f"{m} ({LAYERS[layer(m)]}) imports {n} ({LAYERS[layer(n)]})")
    assert wrong == []


def test_core_never_imports_pages_or_streamlit_and_pages_never_the_cli():
    mods = sources()
    wrong = []
    for m, p in mods.items():
        names = imports(p, module_level_only=False)
        if m.startswith("core"):
            wrong += [f"{m} imports {n}" for n in names if n.split(".")[0] in ("streamlit", "pages")]
        else:
            wrong += [f"{m} imports {n}" for n in names if n == "core.cli" or n.startswith("core.cli.")]
    assert wrong == []


def test_pages_hold_no_sql():
    """Pages call core functions; SQL lives in core (store.rows/scalar/execute/df never in a page)."""
    wrong = []
    for p in (ROOT / "pages").glob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("rows", "scalar", "execute", "executemany", "df")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "store"):
                wrong.append(f"{p.name}:{node.lineno} store.{node.func.attr}(...)")
    assert wrong == []


# pages/train.py is being rewritten by the lead (its curves still go to st.plotly_chart directly).
DIRECT_RENDER_ALLOWED = {"_ui.py"}


def test_pages_draw_tables_and_charts_only_through_the_escaping_helpers():
    """st.table renders Markdown in its cells and Plotly renders <a href>/<b> in its labels: pages
    draw both through pages/_ui.py:table and chart, which show every cell and label as text."""
    wrong = []
    for p in [*(ROOT / "pages").glob("*.py"), ROOT / "app.py"]:
        if p.name in DIRECT_RENDER_ALLOWED:
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("table", "plotly_chart")):  # st.table, col.plotly_chart …
                wrong.append(f"{p.name}:{node.lineno} .{node.func.attr}(...)")
    assert wrong == []


def test_help_path_loads_no_heavy_library_at_module_level():
    mods = sources()
    wrong = []
    for m in HELP_PATH:
        for n in imports(mods[m], module_level_only=True):
            if n.split(".")[0] in HEAVY:
                wrong.append(f"{m} imports {n} at module level")
    assert wrong == []


# Test modules that still import another test module, owned by the later steps' helpers: their shared
# helpers belong in a helper module (tests/minidata.py, minedata.py, evaldata.py) or in conftest.py.
# Remove a pair once it is fixed; no new pair may appear.
KNOWN_TEST_IMPORTS = {
    ("test_pages_review", "test_review"),
    ("test_preference_sets", "test_review"), ("test_preference_sets", "test_augment"),
    ("test_map_umap", "test_map"), ("test_pages_visualise", "test_map"),
}


def test_test_modules_do_not_import_each_other():
    found = set()
    for p in (ROOT / "tests").glob("test_*.py"):
        for n in imports(p, module_level_only=False):
            other = n.split(".")[1] if n.startswith("tests.") else n.split(".")[0]
            if other.startswith("test_") and other != p.stem and (ROOT / "tests" / f"{other}.py").exists():
                found.add((p.stem, other))
    assert found - KNOWN_TEST_IMPORTS == set()


# Imported by the code but installed another way (documented in README / requirements-gpu.txt), or
# optional (imported inside `try: … except ImportError`, or found with importlib before use).
NOT_IN_REQUIREMENTS = {"torch": "installed first, CPU or CUDA build (README set-up)", "unsloth": "requirements-gpu.txt",
                       "embedding_atlas": "optional: pages/visualise.py looks for it with importlib"}


def _optional(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside a try whose handler catches ImportError."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers):
            for inner in node.body:
                lines |= {n.lineno for n in ast.walk(inner) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def test_every_third_party_import_is_declared():
    import re
    import sys
    from importlib.metadata import packages_distributions

    declared = "\n".join((ROOT / f).read_text(encoding="utf-8").lower()
                         for f in ("requirements.txt", "requirements-gpu.txt", "requirements-ray.txt") if (ROOT / f).exists())
    names = {re.split(r"[<>=\[ ;#]", line.strip())[0].replace("_", "-")
             for line in declared.splitlines() if line.strip() and not line.startswith("#")}
    dists = packages_distributions()
    missing = set()
    for p in sources().values():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        optional = _optional(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if (top in sys.stdlib_module_names or top in ("core", "pages", "tests") or node.lineno in optional
                        or top in NOT_IN_REQUIREMENTS):
                    continue
                if not {d.lower().replace("_", "-") for d in dists.get(top, [top])} & names:
                    missing.add(f"{top} ({p.relative_to(ROOT)})")
    assert missing == set()


def test_no_test_skips_on_a_missing_project_module():
    """importorskip of our own module turns a broken import into a silent skip: import it plainly."""
    wrong = []
    for p in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("importorskip") and node.args
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).split(".")[0] in ("core", "pages")):
                wrong.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []

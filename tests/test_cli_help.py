"""`python -m core --help` imports only what the help needs (core/cli/__init__.py NOUNS): no numpy,
pandas, torch or duckdb; each noun's command still loads its own module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

from core import cli
from core.cli import main

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numpy", "pandas", "duckdb", "scipy", "transformers", "openai", "google")

_PROBE = """
import json, runpy, sys
sys.argv = ["core"] + sys.argv[1:]
try:
    runpy.run_module("core", run_name="__main__")
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps(heavy))
""".replace("HEAVY", repr(json.dumps(HEAVY)))


def _probe(*args: str) -> tuple[list[str], str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def test_root_help_imports_nothing_heavy_and_lists_every_noun():
    heavy, text = _probe("--help")
    assert heavy == []
    for noun, (_, help_) in cli.NOUNS.items():
        assert noun in text and help_[:30] in text
    heavy, _ = _probe("--db", "/nonexistent/x.duckdb", "--help")
    assert heavy == []


def test_each_noun_line_matches_its_modules_own_help():
    cli._register()  # every noun
    real = {g.name: g.typer_instance.info.help for g in cli.app.registered_groups if g.name not in cli.ALIASES}
    real |= {c.name: (c.callback.__doc__ or "").strip().splitlines()[0] for c in cli.app.registered_commands}
    assert real == {n: h for n, (_, h) in cli.NOUNS.items()}
    assert isinstance(cli._root_help_app(), typer.Typer)


def test_a_noun_loads_its_module(capsys):
    assert main(["batch", "--help"]) == 0
    assert "write" in capsys.readouterr().out
    assert main(["nonsense"]) == 2 and "No such command" in capsys.readouterr().err

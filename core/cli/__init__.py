"""CLI: `python -m core [--db PATH] NOUN VERB ...`, mirroring every page action.

Library errors become one `Error: …` line with a hint, never a traceback (CSAT_DEBUG=1 shows one).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

# Plain help (no rich boxes): `--help` stays fast; set TYPER_USE_RICH=1 for the rich layout.
os.environ.setdefault("TYPER_USE_RICH", "0")

import click  # noqa: E402
import typer  # noqa: E402

from core.config import db_path  # noqa: E402
from core.errors import CoreError, ImportFailed  # noqa: E402
from core.secrets import redact  # noqa: E402
from core.steps import steps  # noqa: E402

if TYPE_CHECKING:
    from core.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="CSAT reasoning-distillation engine (the dashboard's CLI twin).")


@app.callback()
def _root(ctx: typer.Context,
          db: str = typer.Option(None, "--db", envvar="CSAT_DB", help="DuckDB file (default data/workspace/csat.duckdb)")) -> None:
    ctx.obj = {"db": str(db_path(db)), "store": None}


def store_of(ctx: typer.Context) -> Store:
    """Open the store on first use, so `--help` never takes the file lock."""
    from core.store import Store  # duckdb loads only when a command needs the store

    root = ctx.find_root()
    if root.obj["store"] is None:
        root.obj["store"] = Store(root.obj["db"])
    return root.obj["store"]


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=1, default=str))


# noun -> (module of core.cli, its one-line help): every step of the registry (core/steps: the noun is
# the step's name, its module core/cli/<name>.py) and the tools over them. A command imports only its
# noun's module; the root --help lists these without importing any (no numpy, no step configs).
# tests/test_cli_help.py checks that each line matches the module's own help.
TOOLS: dict[str, str] = {
    "batch": "Batch files (OpenAI Batch JSONL) and Ray: a step's requests answered outside the live loop, stored back.",
    "jobs": "Background jobs: state, progress, errors.",
    "lineage": "Lineage: where a tuned model, a pair or a question came from, and where it went.",
    "models": "Register, list, test and delete models.",
    "recipe": "Recipes: every round of the method from one TOML file.",
}
NOUNS: dict[str, tuple[str, str]] = dict(sorted(
    {s.name: (s.name, s.help) for s in steps()}.items() | {n: (n, h) for n, h in TOOLS.items()}.items()))
ALIASES: dict[str, str] = {a: s.name for s in steps() for a in s.aliases}  # `map` is `visualise`


def add_noun(sub: typer.Typer, noun: str) -> None:
    """Register a noun's commands under its name and, hidden, under its earlier names."""
    app.add_typer(sub, name=noun)
    for alias in (a for a, n in ALIASES.items() if n == noun):
        app.add_typer(sub, name=alias, hidden=True)


def _noun(argv: list[str]) -> str | None:
    """The first word that is not a root option (or its value): the noun, or None for root help."""
    args = iter(argv)
    for a in args:
        if a == "--db":
            next(args, None)
        elif not a.startswith("-"):
            return a
    return None


def _register(noun: str | None = None) -> None:
    """Import the noun's module (it registers itself on `app`); every noun's when none is known."""
    import importlib

    noun = ALIASES.get(noun, noun)
    names = [NOUNS[noun][0]] if noun in NOUNS else [m for m, _ in NOUNS.values()]
    for module in names:
        importlib.import_module(f"core.cli.{module}")


def _root_help_app() -> typer.Typer:
    """`app` as root --help shows it, each noun a stub with its help line: nothing heavy imported."""
    listing = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                          help=app.info.help)
    listing.callback()(_root)
    for name, (_, help_) in NOUNS.items():
        listing.add_typer(typer.Typer(help=help_), name=name)
    return listing


def _say(text: str) -> None:
    """One line of the error report on stderr, with any known secret masked (servers echo keys)."""
    typer.echo(redact(text), err=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    noun = _noun(args)
    target = app
    if noun is None:
        target = _root_help_app()
    else:
        _register(noun)
    if not os.environ.get("CSAT_DEBUG") and not logging.getLogger().handlers:
        # A failed job logs its traceback (kept in `jobs show`); without a handler Python's last-resort
        # one would print it on stderr before the one `Error:` line the CLI promises.
        logging.getLogger("core").addHandler(logging.NullHandler())
    try:
        code = target(args=args, standalone_mode=False)
        return code if isinstance(code, int) else 0  # click returns typer.Exit's code here
    except CoreError as exc:
        _say(f"Error: {exc.message}")
        if isinstance(exc, ImportFailed):
            for issue in exc.issues[:50]:
                _say(f"  {issue}")
            if len(exc.issues) > 50:
                typer.echo(f"  … and {len(exc.issues) - 50} more", err=True)
        if exc.hint:
            _say(f"Hint: {exc.hint}")
        return 1
    except (click.exceptions.Exit, typer.Exit) as exc:  # typer.Exit/Abort are not click's in newer typer
        return exc.exit_code
    except (click.exceptions.Abort, typer.Abort):
        typer.echo("Aborted.", err=True)
        return 1
    except (click.ClickException, typer.TyperException) as exc:  # usage errors: typer vendors its own click
        _say(f"Error: {exc.format_message()}")
        typer.echo("Hint: add --help to the command to see its arguments", err=True)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        typer.echo("Interrupted; finished work is stored.", err=True)
        return 130
    except Exception as exc:  # last resort: one line, traceback only on request
        if os.environ.get("CSAT_DEBUG"):
            import traceback

            _say(traceback.format_exc().rstrip())
            return 1
        _say(f"Error: unexpected {type(exc).__name__}: {exc} (set CSAT_DEBUG=1 for a traceback)")
        return 1


def run() -> None:
    sys.exit(main())

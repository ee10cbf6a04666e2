"""CLI: `python -m core [--db PATH] NOUN VERB ...`, mirroring every page action.

Library errors become one `Error: …` line with a hint, never a traceback (CSAT_DEBUG=1 shows one).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

# Plain help (no rich boxes): `--help` stays fast; set TYPER_USE_RICH=1 for the rich layout.
os.environ.setdefault("TYPER_USE_RICH", "0")

import click  # noqa: E402
import typer  # noqa: E402

from core.config import db_path  # noqa: E402
from core.errors import CoreError, ImportFailed  # noqa: E402

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


def _register() -> None:
    # Imported here so each noun lives in its own module and registers itself.
    from core.cli import augment, data, evaluate, jobs, map, mine, models, pairs, recipe, solve, train  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        code = app(args=argv, standalone_mode=False)
        return code if isinstance(code, int) else 0  # click returns typer.Exit's code here
    except CoreError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        if isinstance(exc, ImportFailed):
            for issue in exc.issues[:50]:
                typer.echo(f"  {issue}", err=True)
            if len(exc.issues) > 50:
                typer.echo(f"  … and {len(exc.issues) - 50} more", err=True)
        if exc.hint:
            typer.echo(f"Hint: {exc.hint}", err=True)
        return 1
    except (click.exceptions.Exit, typer.Exit) as exc:  # typer.Exit/Abort are not click's in newer typer
        return exc.exit_code
    except (click.exceptions.Abort, typer.Abort):
        typer.echo("Aborted.", err=True)
        return 1
    except (click.ClickException, typer.TyperException) as exc:  # usage errors: typer vendors its own click
        typer.echo(f"Error: {exc.format_message()}", err=True)
        typer.echo("Hint: add --help to the command to see its arguments", err=True)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        typer.echo("Interrupted; finished work is stored.", err=True)
        return 130
    except Exception as exc:  # last resort: one line, traceback only on request
        if os.environ.get("CSAT_DEBUG"):
            raise
        typer.echo(f"Error: unexpected {type(exc).__name__}: {exc} (set CSAT_DEBUG=1 for a traceback)", err=True)
        return 1


def run() -> None:
    sys.exit(main())

"""`data` commands: import, list, show, export, delete, samples."""

from __future__ import annotations

from pathlib import Path

import typer

from core.cli import add_noun, print_json, store_of
from core.render import question_text
from core.steps.data import datasets
from core.steps.data.datasets import parse_mapping
from core.steps.data.formats.base import visible_controls

data_app = typer.Typer(no_args_is_help=True, help="Import, browse, export and delete question sets.")
add_noun(data_app, "data")


@data_app.command("import")
def import_(ctx: typer.Context, file: Path = typer.Argument(..., help="CSV, JSON, JSONL, Parquet or datasets folder"),
            name: str = typer.Option(..., "--name", help="dataset name"),
            split: str = typer.Option(..., "--split", help="train | seed | test"),
            fmt: str = typer.Option("auto", "--format", help="auto | boostcamp | kice | kmmlu | generic"),
            subject: str = typer.Option(None, "--subject", help="subject for rows that carry none"),
            skip_bad: bool = typer.Option(False, "--skip-bad", help="import good rows, list the bad ones"),
            replace: bool = typer.Option(False, "--replace", help="replace a dataset of the same name"),
            mapping: list[str] = typer.Option(None, "--map", help="FIELD=COLUMN for generic files")) -> None:
    """Import a question file (all-or-nothing unless --skip-bad)."""
    result = datasets.import_file(store_of(ctx), file, name, split, fmt=fmt, subject=subject,
                                  skip_bad=skip_bad, replace=replace, mapping=parse_mapping(mapping))
    if result.already:
        typer.echo(f"{file.name} is already imported as {name!r}; nothing changed.")
        return
    typer.echo(f"Imported {result.imported} questions into {name!r} ({result.format}, {split}).")
    for note in result.notes:  # e.g. control characters removed: said, never silent
        typer.echo(f"Cleaned: {note}.")
    if result.skipped:
        typer.echo(f"Skipped {len(result.skipped)} bad row(s):")
        for issue in result.skipped:
            typer.echo(f"  {issue}")


@data_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List datasets with counts per subject."""
    rows = datasets.list_datasets(store_of(ctx))
    if as_json:
        print_json([{k: r[k] for k in ("name", "split", "questions", "points", "subjects")} for r in rows])
        return
    if not rows:
        typer.echo("No datasets yet. Try: python -m core data samples")
    for r in rows:
        subjects = ", ".join(f"{s} {n}" for s, n in r["subjects"].items())
        points = f", {r['points']} points" if r["points"] is not None else ""
        typer.echo(f"{r['name']} [{r['split']}] {r['questions']} questions{points}: {subjects}")


@data_app.command("show")
def show(ctx: typer.Context, name: str, search: str = typer.Option(None, "--search"),
         subject: str = typer.Option(None, "--subject"), limit: int = typer.Option(5, "--limit")) -> None:
    """Print questions the way a student sees them."""
    for q in datasets.questions(store_of(ctx), name, search=search, subject=subject, limit=limit):
        answer = f"정답 {q['answer']}" if q["answer"] else "정답 없음"
        typer.echo(visible_controls(f"── {q['qid']} · {q['subject']} · {answer}\n{question_text(q, q['qid'])}\n"))


@data_app.command("export")
def export(ctx: typer.Context, name: str, fmt: str = typer.Option("jsonl", "--format", help="jsonl | submission"),
           out: Path = typer.Option(..., "--out")) -> None:
    """Export a dataset as JSONL (every field) or a submission CSV (id,answer)."""
    n = datasets.export_dataset(store_of(ctx), name, fmt, out)
    typer.echo(f"Wrote {n} questions to {out}.")


@data_app.command("delete")
def delete(ctx: typer.Context, name: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Delete a dataset and everything derived from it (shows the counts first; refuses when a
    frozen preference set was made from it)."""
    store = store_of(ctx)
    plan = datasets.delete_plan(store, name)
    if plan.blockers:
        datasets.delete_dataset(store, name)  # raises the refusal, naming what depends on it
    typer.echo(f"Deleting {name!r} removes: " + ", ".join(plan.lines()), err=True)
    if not yes and not typer.confirm(f"Delete dataset {name!r}?"):
        raise typer.Abort()
    typer.echo(f"Deleted {name!r} ({datasets.delete_dataset(store, name)} questions).")


@data_app.command("samples")
def samples(ctx: typer.Context) -> None:
    """Load the bundled sample sets (no-op when already loaded)."""
    for r in datasets.load_samples(store_of(ctx)):
        typer.echo(f"{r.name}: " + ("already loaded" if r.already else f"imported {r.imported} questions"))

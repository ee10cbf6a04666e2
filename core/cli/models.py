"""`models` commands: add, list, test, delete."""

from __future__ import annotations

import typer

from core import engine, models
from core.cli import add_noun, print_json, store_of
from core.errors import CoreError
from core.models import parse_param_items as parse_params

models_app = typer.Typer(no_args_is_help=True, help="Register, list, test and delete models.")
add_noun(models_app, "models")


@models_app.command("add")
def add(ctx: typer.Context, name: str = typer.Argument(..., help="a name of your choice"),
        provider: str = typer.Option(..., "--provider", help="gemini | openai | local"),
        model_id: str = typer.Option(..., "--model", help="model id, hub id, folder or .gguf path"),
        base_url: str = typer.Option(None, "--base-url", help="server URL (openai-compatible servers)"),
        param: list[str] = typer.Option(None, "--param", help="KEY=VALUE, repeatable (see `models params`)"),
        adapter: str = typer.Option(None, "--adapter", help="PEFT adapter folder (local provider)"),
        description: str = typer.Option(None, "--description"),
        replace: bool = typer.Option(False, "--replace", help="replace a model of the same name")) -> None:
    """Register a model (keys are never stored: pass api_key_env=VARIABLE_NAME)."""
    m = models.add_model(store_of(ctx), name, provider, model_id, base_url=base_url, params=parse_params(param),
                         adapter=adapter, description=description, replace=replace)
    key = f"; key from ${m.key_env}" + ("" if m.api_key() else " (not set yet)") if m.key_env else ""
    typer.echo(f"Registered {m.name!r} ({m.provider}: {m.model_id}{key}).")


@models_app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List registered models (no secrets)."""
    rows = models.list_models(store_of(ctx))
    if as_json:
        print_json(rows)
        return
    for r in rows:
        extra = f" @ {r['base_url']}" if r["base_url"] else ""
        key = "" if r["key_env"] is None else f" [key ${r['key_env']}: {'set' if r['key_set'] else 'NOT SET'}]"
        typer.echo(f"{r['name']}: {r['provider']} {r['model_id']}{extra}{key}")
        if r["description"]:
            typer.echo(f"    {r['description']}")


@models_app.command("params")
def params_() -> None:
    """The params a model takes, with their defaults."""
    for name, f in models.ModelParams.model_fields.items():
        typer.echo(f"{name} (default {f.default!r}): {f.description or ''}")


@models_app.command("test")
def test(ctx: typer.Context, name: str) -> None:
    """Send one short request and show the reply (or what went wrong)."""
    out = engine.test_model(store_of(ctx), name)
    if not out["ok"]:
        raise CoreError(f"{name} failed: {out['error']}")
    typer.echo(f"{name} answered in {out['latency_s']} s ({out['finish_reason']}): {(out['text'] or '').strip()[:200]!r}")


@models_app.command("delete")
def delete(ctx: typer.Context, name: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Remove a model and what was derived from it only (its replies, engine predictions); shows the
    counts and asks first; refuses when a mining or training run used it."""
    store = store_of(ctx)
    plan = models.delete_plan(store, name)
    if plan.blockers:
        models.delete_model(store, name)  # raises the refusal, naming what depends on it
    if plan.total > plan.counts.get("models", 0):
        typer.echo(f"Deleting model {name!r} removes: " + ", ".join(plan.lines()), err=True)
        if not yes and not typer.confirm(f"Delete model {name!r}?"):
            raise typer.Abort()
    models.delete_model(store, name)
    typer.echo(f"Deleted model {name!r}.")

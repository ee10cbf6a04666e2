"""`train` commands: preflight, start, list, show, cancel, resume, export (ORPO in a worker process)."""

from __future__ import annotations

import inspect
import signal
import sys
import typing
from pathlib import Path
from typing import Any

import click
import typer

from core.cli import app, print_json, store_of
from core.cli.options import config_params
from core.errors import CoreError
from core.training.config import TrainConfig, preset

train_app = typer.Typer(no_args_is_help=True, help="ORPO fine-tuning as a background worker: start, follow, cancel, resume.")
app.add_typer(train_app, name="train")

_CORE = ("set_name", "base_model")


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """--param KEY=VALUE for any TrainConfig field; a typo fails before anything starts."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CoreError(f"--param takes KEY=VALUE (got {item!r})", hint="e.g. --param max_steps=2")
        key, value = (s.strip() for s in item.split("=", 1))
        key = key.replace("-", "_")
        if key not in TrainConfig.model_fields or key in _CORE:
            known = ", ".join(k for k in TrainConfig.model_fields if k not in _CORE)
            raise CoreError(f"unknown training setting {key!r}", hint=f"settings: {known}")
        ann = TrainConfig.model_fields[key].annotation
        out[key] = [v.strip() for v in value.split(",") if v.strip()] if typing.get_origin(ann) is list else value
    return out


def _config(ctx: typer.Context, set_name: str, base: str, params: list[str] | None, preset_name: str | None,
            fields: dict[str, Any]) -> TrainConfig:
    values: dict[str, Any] = preset(preset_name) if preset_name else {}
    for name, value in fields.items():  # options typed on the command line (not defaults)
        if value is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            values[name] = value
    values.update(parse_params(params))
    return TrainConfig.parse({**values, "set_name": set_name, "base_model": base})


def _progress(as_bar: bool):
    from tqdm import tqdm

    bar = tqdm(total=0, file=sys.stderr, unit="step", dynamic_ncols=True, disable=None if as_bar else True, leave=False)

    def update(run: dict[str, Any]) -> None:
        p = run.get("progress") or {}
        if p.get("max_steps"):
            bar.total = p["max_steps"]
            bar.n = p.get("step") or 0
            last = p.get("last") or {}
            bits = [p.get("state") or ""]
            if last.get("loss") is not None:
                bits.append(f"loss {last['loss']:.4f}")
            if p.get("eta_s") is not None:
                bits.append(f"ETA {p['eta_s']:.0f}s")
            bar.set_postfix_str(", ".join(bits))
            bar.refresh()

    return bar, update


def _follow(store: Any, run_id: str) -> dict[str, Any]:
    """Wait for the run with a bar on stderr; Ctrl-C / SIGTERM cancels it (exit 130, resumable)."""
    from core import training

    stop = {"asked": False}

    def on_signal(_signum: int, _frame: Any) -> None:
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bar, update = _progress(True)
    try:
        run = training.wait(store, run_id, on_progress=update, stop=lambda: stop["asked"])
    finally:
        bar.close()
        for s, h in previous.items():
            signal.signal(s, h)
    if stop["asked"] and run["state"] == "running":
        training.cancel(store, run_id)
        typer.echo(f"Cancelled run {run_id}; resume it with: python -m core train resume {run_id}", err=True)
        raise typer.Exit(130)
    return run


def _report(run: dict[str, Any], as_json: bool) -> None:
    from core.training import ingest

    s = ingest.summary(run)
    if as_json:
        print_json(s)
    elif run["state"] == "done":
        loss = (s["final"] or {}).get("loss")
        typer.echo(f"run {s['run']} done: {s['steps']} steps, {s['epochs'] or 0:.2f} epochs in {s['seconds'] or 0:.0f} s "
                   f"on {s['backend']}" + (f", final loss {loss:.4f}" if loss is not None else "")
                   + f". Tuned model: {s['adapter_model']}")
    else:
        typer.echo(f"run {s['run']}: {run['state']}" + (f" — {run['message']}" if run.get("message") else ""))
    if run["state"] in ("failed", "cancelled") and not as_json:
        raise typer.Exit(1)


def start(ctx: typer.Context, set_name: str, base: str, param: list[str] | None, preset_name: str | None,
          wait: bool, as_json: bool, **fields: Any) -> None:
    """Start (or resume, or attach to) the run for these settings."""
    from core import training
    from core.training import launcher

    store = store_of(ctx)
    config = _config(ctx, set_name, base, param, preset_name, fields)
    run_id, what = training.start(store, config)
    typer.echo({"started": f"Started training run {run_id}.", "resumed": f"Resumed training run {run_id} (same settings).",
                "running": f"Run {run_id} with these settings is already running: following it.",
                "done": f"Run {run_id} with these settings already finished."}[what], err=True)
    if wait:
        run = _follow(store, run_id)
        _report(run, as_json)
        if run["state"] == "failed" and as_json:
            raise typer.Exit(1)
        return
    run = launcher.get(store, run_id)
    if as_json:
        from core.training import ingest

        print_json(ingest.summary(run))
    else:
        typer.echo(f"Follow it with: python -m core train show {run_id} (the dashboard's Train page shows live curves).")


_start_params = [
    inspect.Parameter("set_name", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                      default=typer.Option(..., "--set", help="frozen preference set")),
    inspect.Parameter("base", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                      default=typer.Option(..., "--base", help="registered local model (e.g. gemma3-270m-local) or a transformers folder")),
    inspect.Parameter("param", inspect.Parameter.KEYWORD_ONLY, annotation=list[str] | None,
                      default=typer.Option(None, "--param", help="KEY=VALUE for any setting below (repeat); lists comma-separated")),
    inspect.Parameter("preset_name", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                      default=typer.Option(None, "--preset", help="'tiny CPU trial' | 'V100 16 GB' | 'original (orpo-train)'")),
    inspect.Parameter("wait", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--wait", help="follow the run until it ends (Ctrl-C cancels it)")),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--json", help="print the run's summary as JSON on stdout")),
]


def _start_command(ctx: typer.Context, **kwargs: Any) -> None:
    fixed = {p.name: kwargs.pop(p.name) for p in _start_params}
    start(ctx, fixed["set_name"], fixed["base"], fixed["param"], fixed["preset_name"], fixed["wait"],
          fixed["as_json"], **kwargs)


_start_command.__signature__ = inspect.Signature(
    [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
     *_start_params, *config_params(TrainConfig, exclude=_CORE)])
_start_command.__doc__ = "Start an ORPO run on a preference set (the same settings again resume or show that run)."
train_app.command("start")(_start_command)


@train_app.command("preflight")
def preflight_cmd(ctx: typer.Context, set_name: str = typer.Option(..., "--set"), base: str = typer.Option(..., "--base"),
                  param: list[str] = typer.Option(None, "--param"), preset_name: str = typer.Option(None, "--preset"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Check a run before starting it: token lengths, dropped/truncated pairs, GPU, memory and time estimate, disk."""
    from core.training import preflight

    store = store_of(ctx)
    config = _config(ctx, set_name, base, param, preset_name, {})
    pf = preflight.preflight(store, config)
    if as_json:
        print_json(pf)
        return
    t = pf["tokens"]
    gpu = pf["gpu"]
    typer.echo(f"set {pf['set']['name']}: {pf['pairs']} pairs, {pf['kept']} kept, {len(pf['dropped'])} dropped, "
               f"{len(pf['truncated'])} truncated (limits: prompt {t['limits']['max_prompt_length']}, "
               f"total {t['limits']['max_length']} tokens)")
    typer.echo(f"tokens: prompt max {t['prompt']['max']} / mean {t['prompt']['mean']}, chosen max {t['chosen']['max']}, "
               f"rejected max {t['rejected']['max']}; prompt rendering: {pf['template']['kind']}"
               f" (thinking {pf['template']['thinking']})")
    typer.echo(f"device: {gpu['name'] + ' ' + str(gpu['memory_gb']) + ' GB, compute ' + str(gpu['compute']) if gpu else 'no GPU (CPU)'}; "
               f"backend {pf['backend']}, {pf['precision']}; estimate ≈ {pf['estimate']['memory_gb']} GB, "
               f"≈ {pf['estimate']['seconds']} s for {pf['estimate']['steps']} steps; free disk {pf['disk_free_gb']} GB")
    for d in pf["dropped"]:
        typer.echo(f"  dropped pair {d['idx']}: {d['reason']}")
    for d in pf["truncated"]:
        typer.echo(f"  truncated pair {d['idx']}: {d['reason']}")
    for w in pf["warnings"]:
        typer.echo(f"Warning: {w}", err=True)


@train_app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every training run with its state (runs left running are re-attached or marked failed)."""
    from core import training

    runs = training.list_runs(store_of(ctx))
    if as_json:
        print_json(runs)
        return
    if not runs:
        typer.echo("No training runs yet.")
    for r in runs:
        loss = (r["final"] or {}).get("loss")
        typer.echo(f"{r['run']}  {r['state']:<9} {r['set']} on {r['base']}  backend {r['backend']}  "
                   f"steps {r['steps'] or 0}" + (f"  loss {loss:.4f}" if loss is not None else "")
                   + (f"  → {r['adapter_model']}" if r["adapter_model"] else ""))


@train_app.command("show")
def show_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id"),
             as_json: bool = typer.Option(False, "--json"), tail: int = typer.Option(20, "--tail", help="log lines")) -> None:
    """A run's config, state, metrics and log tail."""
    from core import training

    info = training.show(store_of(ctx), run, tail=tail)
    if as_json:
        print_json(info)
        return
    p = info["progress"]
    typer.echo(f"run {info['run']}: {info['state']} · {info['set']} on {info['base']} · backend {info['backend']} · "
               f"step {p.get('step') or 0}/{p.get('max_steps') or '?'}" + (f" · ETA {p['eta_s']:.0f} s" if p.get("eta_s") else ""))
    if info["adapter_model"]:
        typer.echo(f"tuned model: {info['adapter_model']}")
    if info["message"]:
        typer.echo(info["message"])
    def f(v: Any, spec: str = ".4f") -> str:
        return "—" if v is None else format(v, spec)

    for m in info["metrics"][-10:]:
        typer.echo(f"  step {m['step']:>5}  loss {f(m['loss'])}  nll {f(m['nll_loss'])}  "
                   f"acc {f(m['rewards_accuracies'], '.2f')}  margin {f(m['rewards_margins'])}  lr {f(m['learning_rate'], '.2e')}")
    if info["log_tail"]:
        typer.echo("--- log ---")
        typer.echo("\n".join(info["log_tail"]))


@train_app.command("cancel")
def cancel_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id")) -> None:
    """End the run's whole process tree (frees the GPU); resume continues from the last checkpoint."""
    from core import training

    r = training.cancel(store_of(ctx), run)
    typer.echo(f"run {run}: {r['message']}")


@train_app.command("resume")
def resume_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id"),
               wait: bool = typer.Option(False, "--wait"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Continue a cancelled or failed run from its last checkpoint (optimizer, scheduler, data order)."""
    from core import training

    store = store_of(ctx)
    where = training.resume(store, run)
    typer.echo(f"Resumed run {run} from {where}.", err=True)
    if wait:
        _report(_follow(store, run), as_json)


@train_app.command("export")
def export_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id"),
               out: Path = typer.Option(..., "--out", help="new folder"),
               merged: bool = typer.Option(False, "--merged", help="merge the adapter into the base weights")) -> None:
    """Write the adapter folder (or merged weights) of a finished run."""
    from core.training import export

    r = export.export(store_of(ctx), run, out, merged=merged)
    what = "merged weights (a transformers folder)" if r["kind"] == "merged" else "LoRA adapter folder"
    typer.echo(f"Wrote the {what} of run {run} to {r['out']}.")

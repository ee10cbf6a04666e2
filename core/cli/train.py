"""`train` commands: preflight, start, list, show, cancel, resume, export (ORPO in a worker process)."""

from __future__ import annotations

import inspect
import signal
import sys
import typing
from pathlib import Path
from typing import Any

import typer

from core.cli import add_noun, print_json, store_of
from core.cli.options import config_params
from core.config import key_values
from core.errors import CoreError
from core.steps.train.config import TrainConfig, preset

train_app = typer.Typer(no_args_is_help=True, help="ORPO fine-tuning as a background worker: start, follow, cancel, resume.")
add_noun(train_app, "train")

_CORE = ("set_name", "base_model")


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """--param KEY=VALUE for any TrainConfig field; a typo fails before anything starts."""
    out: dict[str, Any] = {}
    for key, value in key_values(items, "--param", "max_steps=2", dashes=True).items():
        if key not in TrainConfig.model_fields or key in _CORE:
            known = ", ".join(k for k in TrainConfig.model_fields if k not in _CORE)
            raise CoreError(f"unknown training setting {key!r}", hint=f"settings: {known}")
        ann = TrainConfig.model_fields[key].annotation
        out[key] = [v.strip() for v in value.split(",") if v.strip()] if typing.get_origin(ann) is list else value
    return out


def _typed(ctx: typer.Context, name: str) -> bool:
    """Was this option typed on the command line (not its default)? By name: typer vendors its own
    click, whose ParameterSource enum is not click's (comparing the two was always False)."""
    source = ctx.get_parameter_source(name)
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _config(ctx: typer.Context, set_name: str, base: str, params: list[str] | None, preset_name: str | None,
            fields: dict[str, Any]) -> TrainConfig:
    """Preset, then options typed on the command line, then --param: the later wins."""
    values: dict[str, Any] = preset(preset_name) if preset_name else {}
    typed = {name: value for name, value in fields.items() if value is not None and _typed(ctx, name)}
    from_params = parse_params(params)
    given = set(typed) | set(from_params)
    values = TrainConfig.resolve(values | typed | from_params, given)
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
    from core.steps import train as training

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
    from core.steps.train import ingest

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
    from core.steps import train as training
    from core.steps.train import record

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
    run = record.get(store, run_id)
    if as_json:
        from core.steps.train import ingest

        print_json(ingest.summary(run))
    else:
        typer.echo(f"Follow it with: python -m core train show {run_id} (the dashboard's Train page shows live curves).")


_common_params = [
    inspect.Parameter("set_name", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                      default=typer.Option(..., "--set", help="frozen preference set")),
    inspect.Parameter("base", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                      default=typer.Option(..., "--base", help="registered local model (e.g. gemma3-270m-local) or a transformers folder")),
    inspect.Parameter("param", inspect.Parameter.KEYWORD_ONLY, annotation=list[str] | None,
                      default=typer.Option(None, "--param", help="KEY=VALUE for any setting below (repeat); lists comma-separated")),
    inspect.Parameter("preset_name", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                      default=typer.Option(None, "--preset", help="'tiny CPU trial' | 'V100 16 GB' | 'original (orpo-train)'")),
]
_json_param = inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                default=typer.Option(False, "--json", help="print the run's summary as JSON on stdout"))
_wait_param = inspect.Parameter("wait", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                default=typer.Option(False, "--wait", help="follow the run until it ends (Ctrl-C cancels it)"))


def _with_options(fn: Any, params: list[inspect.Parameter], doc: str, name: str) -> None:
    """Register fn(ctx, **kwargs) with `params` plus one option per TrainConfig field."""
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
         *params, *config_params(TrainConfig, exclude=_CORE)])
    fn.__doc__ = doc
    train_app.command(name)(fn)


def _start_command(ctx: typer.Context, **kwargs: Any) -> None:
    fixed = {p.name: kwargs.pop(p.name) for p in (*_common_params, _wait_param, _json_param)}
    start(ctx, fixed["set_name"], fixed["base"], fixed["param"], fixed["preset_name"], fixed["wait"],
          fixed["as_json"], **kwargs)


_with_options(_start_command, [*_common_params, _wait_param, _json_param],
              "Start an ORPO run on a preference set (the same settings again resume or show that run).", "start")


def preflight_cmd(ctx: typer.Context, **kwargs: Any) -> None:
    from core.steps.train import preflight

    fixed = {p.name: kwargs.pop(p.name) for p in _common_params}
    as_json = kwargs.pop("as_json")
    store = store_of(ctx)
    config = _config(ctx, fixed["set_name"], fixed["base"], fixed["param"], fixed["preset_name"], kwargs)
    pf = preflight.preflight(store, config)
    if as_json:
        print_json(pf)
        return
    t = pf["tokens"]
    gpu = pf["gpu"]
    typer.echo(f"set {pf['set']['name']}: {pf['pairs']} pairs, {pf['kept']} kept ({pf['train_pairs']} to train, "
               f"{pf['heldout_pairs']} held out), {len(pf['dropped'])} dropped, "
               f"{len(pf['truncated'])} truncated (limits: prompt {t['limits']['max_prompt_length']}, "
               f"total {t['limits']['max_length']} tokens)")
    typer.echo(f"tokens: prompt max {t['prompt']['max']} / mean {t['prompt']['mean']}, chosen max {t['chosen']['max']}, "
               f"rejected max {t['rejected']['max']}; prompt rendering: {pf['template']['kind']}"
               f" (thinking {pf['template']['thinking']})")
    typer.echo(f"device: {gpu['name'] + ' ' + str(gpu['memory_gb']) + ' GB, compute ' + str(gpu['compute']) if gpu else 'no GPU (CPU)'}; "
               f"backend {pf['backend']}, {pf['precision']}; estimate ≈ {pf['estimate']['memory_gb']} GB, "
               f"≈ {pf['estimate']['seconds']} s for {pf['estimate']['steps']} steps; free disk {pf['disk_free_gb']} GB")
    typer.echo(f"effective batch {pf['effective_batch']} = {config.per_device_train_batch_size} per device × "
               f"{pf['processes']} process(es) × {config.gradient_accumulation_steps} accumulation")
    for d in pf["dropped"]:
        typer.echo(f"  dropped pair {d['idx']}: {d['reason']}")
    for d in pf["truncated"]:
        typer.echo(f"  truncated pair {d['idx']}: {d['reason']}")
    for w in pf["warnings"]:
        typer.echo(f"Warning: {w}", err=True)


_with_options(preflight_cmd, _common_params + [_json_param],
              "Check a run before starting it: token lengths, dropped/truncated/held-out pairs, GPU, memory and time "
              "estimate, disk (the same options as start).", "preflight")


def sweep_cmd(ctx: typer.Context, **kwargs: Any) -> None:
    from core.steps.train import sweep

    fixed = {p.name: kwargs.pop(p.name) for p in _common_params}
    as_json = kwargs.pop("as_json")
    grid_items = [i for i in fixed["param"] or [] if "," in i.partition("=")[2] and not _is_list(i)]
    fixed_items = [i for i in fixed["param"] or [] if i not in grid_items]
    if not grid_items:
        raise CoreError("nothing to sweep: give at least one --param KEY=V1,V2,…", hint="e.g. --param beta=0.1,0.25,0.5,0.8")
    base = _config(ctx, fixed["set_name"], fixed["base"], fixed_items, fixed["preset_name"], kwargs)
    typed = {k for k, v in kwargs.items() if v is not None and _typed(ctx, k)} | {
        i.split("=", 1)[0].strip().replace("-", "_") for i in fixed_items}
    config = sweep.SweepConfig(train=base.model_dump(mode="json", include=typed | {"set_name", "base_model"} | set(
        preset(fixed["preset_name"]) if fixed["preset_name"] else ())), grid=sweep.parse_grid(grid_items))
    grid = sweep.points(config)
    typer.echo(f"Sweep of {len(grid)} runs: " + "; ".join(sweep.label(s) for s, _ in grid), err=True)
    stop = {"asked": False}

    def on_signal(_signum: int, _frame: Any) -> None:
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True

    def progress(i: int, n: int, run: dict[str, Any] | None) -> None:
        p = (run or {}).get("progress") or {}
        sys.stderr.write(f"\r[{i + 1}/{n}] {sweep.label(grid[i][0])}: {p.get('state') or 'starting'} "
                         f"step {p.get('step') or 0}/{p.get('max_steps') or '?'}   ")
        sys.stderr.flush()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = sweep.run(store_of(ctx), config, on_progress=progress, stop=lambda: stop["asked"])
    finally:
        sys.stderr.write("\n")
        for s, h in previous.items():
            signal.signal(s, h)
    if as_json:
        print_json(result)
    else:
        def f(v: Any, spec: str) -> str:
            return "—" if v is None else format(v, spec)

        typer.echo(f"{'setting':<28} {'state':<9} {'held-out margin base → tuned':<30} {'accuracy base → tuned':<22} run")
        for r in result["results"]:
            typer.echo(f"{r['label']:<28} {r['state']:<9} {f(r['base_margin'], '+.4f') + ' → ' + f(r['tuned_margin'], '+.4f'):<30} "
                       f"{f(r['base_accuracy'], '.2f') + ' → ' + f(r['tuned_accuracy'], '.2f'):<22} {r['run']}")
    if result["stopped"]:
        typer.echo("Stopped; the same command resumes the sweep.", err=True)
        raise typer.Exit(130)


def _is_list(item: str) -> bool:
    key = item.split("=", 1)[0].strip().replace("-", "_")
    field = TrainConfig.model_fields.get(key)
    return field is not None and typing.get_origin(field.annotation) is list


_with_options(sweep_cmd, _common_params + [_json_param],
              "Train one run per value of a setting (e.g. --param beta=0.1,0.25,0.5,0.8) and compare them on held-out "
              "pairs; each run is an ordinary run, so a stopped sweep resumes.", "sweep")


@train_app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every training run with its state (runs left running are re-attached or marked failed)."""
    from core.steps import train as training

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
    from core.steps import train as training

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

    from core.steps.train import health

    h = info.get("heldout_detail") or {}
    if h:
        base, tuned = h.get("base") or {}, h.get("tuned") or {}
        typer.echo(f"held-out check ({h.get('pairs')} pairs never trained on): margin base {f(base.get('margin'), '+.4f')}"
                   f" → tuned {f(tuned.get('margin'), '+.4f')} (step {tuned.get('step', '—')}), preference accuracy "
                   f"{f(base.get('accuracy'), '.2f')} → {f(tuned.get('accuracy'), '.2f')}")
        if info["state"] != "running" and (warn := health.verdict(h)):
            typer.echo(f"Warning: {warn}", err=True)
    for sig in health.signals(info["metrics"], h):
        if sig["state"] == "warn":
            typer.echo(f"Warning: {sig['title']}: {sig['detail']}", err=True)

    for m in info["metrics"][-10:]:
        typer.echo(f"  step {m['step']:>5}  loss {f(m['loss'])}  nll {f(m['nll_loss'])}  "
                   f"acc {f(m['rewards_accuracies'], '.2f')}  margin {f(m['rewards_margins'])}  lr {f(m['learning_rate'], '.2e')}")
    if info["log_tail"]:
        typer.echo("--- log ---")
        typer.echo("\n".join(info["log_tail"]))


@train_app.command("cancel")
def cancel_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id")) -> None:
    """End the run's whole process tree (frees the GPU); resume continues from the last checkpoint."""
    from core.steps import train as training

    r = training.cancel(store_of(ctx), run)
    typer.echo(f"run {run}: {r['message']}")


@train_app.command("resume")
def resume_cmd(ctx: typer.Context, run: str = typer.Argument(..., help="run id"),
               wait: bool = typer.Option(False, "--wait"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Continue a cancelled or failed run from its last checkpoint (optimizer, scheduler, data order)."""
    from core.steps import train as training

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
    from core.steps.train import export

    r = export.export(store_of(ctx), run, out, merged=merged)
    what = "merged weights (a transformers folder)" if r["kind"] == "merged" else "LoRA adapter folder"
    typer.echo(f"Wrote the {what} of run {run} to {r['out']}.")

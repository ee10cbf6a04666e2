"""`eval` commands: run, import, report, compare, labels, export."""

from __future__ import annotations

from pathlib import Path

import typer

from core.cli import add_noun, print_json, store_of
from core.cli.options import config_command, exit_if_cancelled, json_option, run_job
from core.steps.evaluate.eval_run import EvalConfig

eval_app = typer.Typer(no_args_is_help=True, help="Score models on a test set and compare them.")
add_noun(eval_app, "evaluate")


def run(ctx: typer.Context, config: EvalConfig, as_json: bool = False) -> None:
    """Run a registered model on the set (cached engine) and store its predictions."""
    from core.steps.evaluate import eval_run

    store = store_of(ctx)
    if warn := eval_run.prompt_warning(store, config):
        typer.echo(f"Warning: {warn}", err=True)
    job = run_job(store, eval_run.start_job(store, config), as_json)
    s = job["result"]
    if s and as_json:
        print_json(s)
    elif s:
        part = f" (a slice: {s['slice']}, {s['questions']} questions)" if s.get("slice") else ""
        typer.echo(f"{s['label']} on {config.dataset}{part}: {s['correct']}/{s['questions'] * s['samples']} sample answers "
                   f"correct ({s['requests_sent']} requests sent, {s['cached']} cached, {s['errors']} errors). "
                   f"See: python -m core evaluate report --dataset {config.dataset}")
    exit_if_cancelled(job)


eval_app.command("run")(config_command(EvalConfig, run, extra=[json_option()]))


@eval_app.command("import")
def import_(ctx: typer.Context, file: Path = typer.Argument(..., help="CSV with columns id,answer"),
            dataset: str = typer.Option(..., "--dataset"), model: str = typer.Option(..., "--model", help="label")) -> None:
    """Store predictions made elsewhere (e.g. a competition submission)."""
    from core.steps.evaluate import predictions

    r = predictions.import_predictions(store_of(ctx), dataset, file, model)
    typer.echo(f"Stored {r.stored} predictions as {model!r} on {dataset!r}"
               + (f"; {r.missing} questions have no prediction (count as unanswered)" if r.missing else "") + ".")
    if r.unknown_ids:
        from core.steps.data.formats.base import (
            visible_controls,  # an id is file text: no escape codes reach the terminal
        )

        shown = visible_controls(", ".join(r.unknown_ids[:20])) + (" …" if len(r.unknown_ids) > 20 else "")
        typer.echo(f"{len(r.unknown_ids)} id(s) in the file are not in {dataset!r} and were not stored: {shown}", err=True)


@eval_app.command("report")
def report(ctx: typer.Context, dataset: str = typer.Option(..., "--dataset"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Accuracy, macro-F1 and CSAT points per model and subject."""
    from core.steps.evaluate import evaluation

    rep = evaluation.report(store_of(ctx), dataset)
    if as_json:
        print_json({"dataset": rep["dataset"], "models": [
            {k: m[k] for k in ("model", "questions", "correct", "accuracy", "macro_f1", "points", "max_points",
                               "unanswered", "errors", "by_subject", "slice")} for m in rep["models"]]})
        return
    typer.echo(f"{dataset}: {rep['questions']} questions with gold answers")
    for m in rep["models"]:
        pts = f", points {m['points']:g}/{m['max_points']:g}" if m["points"] is not None else ""
        part = f" (slice: {m['slice']})" if m.get("slice") else ""
        typer.echo(f"  {m['model']}{part}: {m['correct']}/{m['questions']} = {m['accuracy']:.2%}, "
                   f"macro-F1 {m['macro_f1']:.3f}{pts}, unanswered {m['unanswered']}"
                   + (f" ({m['errors']} no answer (error): the requests failed)" if m.get("errors") else ""))
        for s, v in m["by_subject"].items():
            typer.echo(f"    {s} (n={v['questions']}): {v['accuracy']:.2%}, F1 {v['macro_f1']:.3f}")


@eval_app.command("compare")
def compare(ctx: typer.Context, dataset: str = typer.Option(..., "--dataset"), a: str = typer.Option(..., "--a"),
            b: str = typer.Option(..., "--b"), resamples: int = typer.Option(10_000, "--resamples"),
            seed: int = typer.Option(0, "--seed"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Paired comparison of b against a (McNemar, clustered bootstrap, per-subject Holm)."""
    from core.steps.evaluate import evaluation

    c = evaluation.compare(store_of(ctx), dataset, a, b, n_resamples=resamples, seed=seed)
    if as_json:
        print_json(c)
        return
    mc, bt = c["mcnemar"], c["bootstrap"]
    typer.echo(f"{b} vs {a} on {dataset} (n={c['questions']}): {c['accuracy_b']:.2%} vs {c['accuracy_a']:.2%}; "
               f"fixed {mc['b_only']}, broken {mc['a_only']}, McNemar exact p = {mc['p_value']:.4f}")
    if bt:
        typer.echo(f"  difference {bt['diff']:+.2%}, 95% CI [{bt['low']:+.2%}, {bt['high']:+.2%}] "
                   f"(bootstrap over {bt['n_clusters']} passages, {bt['n_resamples']} resamples, seed {bt['seed']})")
    for r in c["by_subject"]:
        typer.echo(f"  {r['subject']} (n={r['questions']}): {r['diff']:+.2%}, p = {r['p_value']:.3f}, Holm {r['p_holm']:.3f}")


@eval_app.command("labels")
def labels(ctx: typer.Context, dataset: str = typer.Option(..., "--dataset"),
           voters: list[str] = typer.Option(..., "--from", help="prediction labels that vote (repeat)"),
           apply: bool = typer.Option(False, "--apply", help="write agreed labels as the gold answers"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Gold labels by majority vote over several models × runs; ties are listed, never guessed."""
    from core.steps.evaluate import gold_labels

    store = store_of(ctx)
    v = gold_labels.vote_gold_labels(store, dataset, voters)
    written = gold_labels.apply_gold_labels(store, dataset) if apply else 0
    if as_json:
        print_json(v | {"applied": written})
        return
    typer.echo(f"{v['labelled']}/{v['questions']} labelled by vote ({v['unanimous']} unanimous, {v['ties']} ties, "
               f"{v['no_votes']} without votes)"
               + (f", Fleiss' kappa {v['fleiss_kappa']:.3f} over {v['kappa_items']}" if v["fleiss_kappa"] is not None else "")
               + (f"; wrote {written} answers" if apply else ""))
    for d in v["disagreements"][:50]:
        typer.echo(f"  {d['qid']}: votes {d['votes']} → {d['label'] if d['label'] is not None else 'tie: settle by hand'}")


@eval_app.command("export")
def export(ctx: typer.Context, dataset: str = typer.Option(..., "--dataset"), out: Path = typer.Option(..., "--out"),
           png_dir: Path = typer.Option(None, "--png-dir", help="also write the charts as PNG here")) -> None:
    """Write the report as CSV (one row per model × subject), and optionally the charts as PNG."""
    from core import figures
    from core.steps.evaluate import evaluation

    store = store_of(ctx)
    rep = evaluation.report(store, dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(evaluation.report_csv(rep), encoding="utf-8", newline="")
    typer.echo(f"Wrote {len(evaluation.report_rows(rep))} rows to {out}.")
    if png_dir:
        figures.save_png(figures.subject_bars(rep), png_dir / f"{dataset}_by_subject.png")
        figures.save_png(figures.position_bars(evaluation.positions(store, dataset)), png_dir / f"{dataset}_positions.png")
        typer.echo(f"Wrote charts to {png_dir}.")

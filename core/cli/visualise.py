"""`map`: embeddings, the UMAP map, overlap between sets, nearest neighbours, why questions flipped.

Every verb that may embed runs as a job with a progress bar on stderr (Ctrl-C: what is embedded is
kept, exit 130, the same command resumes); `--json` prints the summary on stdout.
"""

from __future__ import annotations

from typing import Any

import typer

from core import embeddings
from core.cli import add_noun, print_json, store_of
from core.cli.options import config_command, exit_if_cancelled, json_option, run_job
from core.runs import StepConfig
from core.steps.visualise import mapping
from core.steps.visualise.mapping import EmbedConfig, FlipsConfig, MapConfig, OverlapConfig

map_app = typer.Typer(no_args_is_help=True,
                      help="Visualise: embed sets, map them with UMAP, measure overlap, neighbours, flips.")
add_noun(map_app, "visualise")

EMBED_KEYS = ("dataset", "embedder", "items", "texts", "computed", "cached")


def _job(ctx: typer.Context, config: StepConfig, as_json: bool = False) -> dict[str, Any]:
    store = store_of(ctx)
    job = run_job(store, mapping.start_job(store, config), as_json)
    exit_if_cancelled(job)
    return job["result"] or {}


def embed(ctx: typer.Context, config: EmbedConfig, as_json: bool = False) -> None:
    """Embed every item of a set (cached by text and embedder: a re-run embeds nothing)."""
    s = _job(ctx, config, as_json)
    if as_json:
        print_json({k: s[k] for k in EMBED_KEYS})
        return
    typer.echo(f"{s['dataset']}: {s['items']} items ({s['texts']} texts: own text and passage apart, a passage "
               f"once) with {s['embedder']}: {s['computed']} embedded now, {s['cached']} from the store")


def project(ctx: typer.Context, config: MapConfig, as_json: bool = False) -> None:
    """Embed the sets and project them to 2-D with UMAP (a projection with the same inputs is reused)."""
    s = _job(ctx, config, as_json)
    if as_json:
        print_json(s)
        return
    typer.echo(f"map {s['projection']}: {s['points']} points of {', '.join(s['sets'])} with {s['embedder']}; "
               f"{s['embed_computed']} embedded now; {s['method']} "
               + ("read from the store" if s["projection_cached"] else f"took {s['umap_seconds']:.1f} s"))


def overlap(ctx: typer.Context, config: OverlapConfig, as_json: bool = False) -> None:
    """How much the test set overlaps the train set: nearest-neighbour cosine, near duplicates, classifier AUC."""
    s = _job(ctx, config, as_json)
    if as_json:
        print_json(s)
        return
    typer.echo(f"{s['test']} ({s['test_items']}) against {s['train']} ({s['train_items']}) with {s['embedder']}")
    for key in ("nn_similarity_mean", "near_duplicates", "auc"):
        typer.echo(f"  {key}: {s[key]} — {s['readings'][key]}")
    for subject, row in s["by_subject"].items():
        typer.echo(f"  {subject}: {row['questions']} questions, nn {row['nn_similarity_mean']:.3f}, "
                   f"{row['near_duplicates']} near duplicates, AUC {row.get('auc')}")
    for d in s["near_duplicate_items"][:20]:
        typer.echo(f"  ≈ {d['similarity']:.3f}  test {d['test_id']} ~ train {d['train_id']}: {d['test_start']}")


def flips(ctx: typer.Context, config: FlipsConfig, as_json: bool = False) -> None:
    """For each question fixed or broken from --a to --b: the nearest training pairs, their seeds and mining run."""
    s = _job(ctx, config, as_json)
    if as_json:
        print_json(s)
        return
    c = s["counts"]
    typer.echo(f"{s['dataset']}: {c['fixed']} fixed, {c['broken']} broken, "
               f"{c['both correct'] + c['both wrong']} unchanged ({s['a']} → {s['b']}); pairs {s['pairs']}")
    for name, d in s["similarity"].items():
        typer.echo(f"  nearest-pair cosine, {name}: n={d['n']} mean {d['mean']} median {d['median']}")
    typer.echo(f"  {s['rank_test']['reading']} (Mann–Whitney p = {s['rank_test']['p_value']})")
    for kind in ("fixed", "broken"):
        for q in s[kind]:
            typer.echo(f"  {kind} {q['qid']} ({q['subject']}): {q['start']}")
            for n in q["neighbours"]:
                seed = n.get("seed") or {}
                origin = f" · seed {seed['pool']}/{seed['qid']} · mining {seed['mining_run']}" if seed else ""
                typer.echo(f"    {n['similarity']:.3f} pair {n['pair']}: {n['start']}{origin}")


map_app.command("embed")(config_command(EmbedConfig, embed, extra=[json_option()]))
map_app.command("run")(config_command(MapConfig, project, extra=[json_option()]))
map_app.command("overlap")(config_command(OverlapConfig, overlap, extra=[json_option()]))
map_app.command("flips")(config_command(FlipsConfig, flips, extra=[json_option()]))


@map_app.command("neighbours")
def neighbours(ctx: typer.Context,
               dataset: str = typer.Option(..., "--dataset", help="set of the question"),
               qid: str = typer.Option(..., "--id", help="its id"),
               in_set: str = typer.Option(..., "--in", help="set to search (dataset, preference set, mining:RUN)"),
               k: int = typer.Option(5, "--k", min=1, max=100, help="how many neighbours"),
               embedder: str = typer.Option(embeddings.DEFAULT, "--embedder", help="embedder name or folder"),
               as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout")) -> None:
    """The k items of a set nearest to one question (cosine in the embedding space)."""
    store = store_of(ctx)
    for name in dict.fromkeys([dataset, in_set]):
        if mapping.needs_embedding(store, [name], embedder):
            _job(ctx, EmbedConfig(dataset=name, embedder=embedder))
    s = mapping.neighbours(store, dataset, qid, in_set, k, embedder)
    if as_json:
        print_json(s)
        return
    typer.echo(f"{s['dataset']}/{s['id']} ({s['subject']}): {s['start']}")
    for n in s["neighbours"]:
        typer.echo(f"  {n['similarity']:.3f}  {s['in']}/{n['id']} ({n['subject']}): {n['start']}")


@map_app.command("warm")
def warm(as_json: bool = typer.Option(False, "--json", help="print what it took as JSON")) -> None:
    """Compile UMAP's code once and keep it on disk, so the first map opens in seconds (make install runs it)."""
    from core.steps.visualise import jitcache

    s = jitcache.warm()
    if as_json:
        print_json(s)
    else:
        typer.echo(f"UMAP's compiled code is cached in {s['cache_dir']} ({'loaded' if s['was_warm'] else 'compiled'} "
                   f"in {s['seconds']} s).")

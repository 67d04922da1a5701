"""`curator` command line (typer). Thin: parse, build the typed config, call the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from curator.config import ConfigError, CurateConfig, load_model

if TYPE_CHECKING:
    from curator.rundir import RunDir

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Curate LM pretraining corpora on Ray.",
    context_settings=HELP,
)
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"curator {version('curator')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Ray's own log lines too.")
    ] = False,
) -> None:
    """Curate LM pretraining corpora on Ray."""
    if verbose:
        import os

        os.environ["CURATOR_VERBOSE"] = "1"  # read by curator.ray_runtime, here and in jobs

InputOpt = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="Input file, folder, glob or URI (repeatable)."),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config field: key.sub=value (repeatable)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def build_curate_config(
    inputs: list[str] | None,
    output: str | None,
    config: Path | None,
    overrides: list[str] | None,
    quiet: bool,
    preset: str | None = None,
) -> CurateConfig:
    base: dict[str, Any] = {}
    if inputs:
        base["inputs"] = [{"path": p} for p in inputs]
    if output:
        base["output"] = output
    if quiet:
        base["quiet"] = True
    if preset is not None:  # preset under the --config file, section by section
        from curator.presets import layered

        base, config = layered(preset, config, base), None
    return load_model(CurateConfig, config, overrides, base=base)  # type: ignore[return-value]


def _fail(err: Exception) -> None:
    console.print(f"[red]error:[/red] {err}")
    raise typer.Exit(2)


def finished_run(run: str) -> RunDir:
    """The RUN folder a command reads, or exit 2 if it holds no finished run."""
    from curator.rundir import RunDir

    rd = RunDir.at(run)
    if not rd.manifest.exists():
        _fail(ConfigError(f"{run} has no manifest/; is it a finished curator run directory?"))
    return rd


def print_table(title: str, columns: list[str], rows: list[tuple]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    Console().print(table)


@app.command()
def curate(
    output: Annotated[str | None, typer.Option("--output", "-o", help="RUN directory.")] = None,
    input: InputOpt = None,
    config: ConfigOpt = None,
    set: SetOpt = None,
    quiet: QuietOpt = False,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Rules for a kind of text: web (the defaults), books (long hard-wrapped "
            "prose), code (source files); layered under --config and --set."
        ),
    ] = None,
) -> None:
    """Curate inputs into a RUN directory (shards, manifest, catalog, stats); resumes if killed."""
    from curator.executor import run_curate
    from curator.output_place import local_path
    from curator.pyarrow_pandas import skip_pandas_probe
    from curator.run_mirror import is_store_uri, staging_folder

    skip_pandas_probe()  # this driver never uses pandas (~0.15 CPU-s of imports)
    try:
        cfg = build_curate_config(input, output, config, set, quiet, preset)
        # resolved here too: the summary and `stats` below read the RUN where it was written
        # (a store output's local staging copy)
        if is_store_uri(cfg.output):
            local = str(staging_folder(cfg.output, cfg.staging))
        else:
            cfg = cfg.model_copy(update={"output": local_path(cfg.output)})
            local = cfg.output
        stats = run_curate(cfg)
    except ConfigError as err:
        _fail(err)
    summary = {k: stats[k] for k in ("records", "kept", "dropped", "quarantined", "tokens")}
    console.print(f"[green]done[/green] {cfg.output}: {json.dumps(summary)}")
    if not cfg.quiet:
        stats_command(local)
    from curator.stats import nothing_survived_note

    if note := nothing_survived_note(stats):
        console.print(f"[yellow]{note}[/yellow]")


@app.command()
def dedup(
    output: Annotated[str, typer.Option("--output", "-o", help="Output .parquet file.")],
    input: InputOpt = None,
    config: ConfigOpt = None,
    set: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Near-duplicate detection alone: one row per input record: doc_id, input_id, duplicate_of."""
    from curator.dedup_job import run_dedup_only

    try:
        cfg = build_curate_config(input, output, config, set, quiet)
        summary = run_dedup_only(cfg, output)
    except ConfigError as err:
        _fail(err)
    console.print(f"[green]done[/green] {output}: {json.dumps(summary)}")


@app.command("stats")
def stats_command(run: Annotated[str, typer.Argument(help="RUN directory.")]) -> None:
    """Tables from the run's DuckDB catalog: the funnel by reason and tokens per source."""
    from curator.catalog import FUNNEL_SQL, PER_SOURCE_SQL, query
    rd = finished_run(run)
    print_table("funnel", *query(rd, FUNNEL_SQL))
    print_table("per source", *query(rd, PER_SOURCE_SQL))
    stats = json.loads(rd.stats.read_text()) if rd.stats.exists() else {}
    if collisions := stats.get("input_id_collisions"):
        console.print(
            f"[yellow]{collisions:,} documents share their input id with another one[/yellow]: "
            "each keeps its own doc_id, and source + record locate it in the input"
        )


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="RUN directory.")],
    reason: Annotated[
        str | None,
        typer.Option("--reason", "-r", help="Print documents of this reason; omit to list them."),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Documents to print.")] = 5,
    chars: Annotated[
        int, typer.Option("--chars", min=1, help="Characters of each text to print.")
    ] = 500,
) -> None:
    """Dropped and quarantined documents with their text, from RUN/excluded/ (a sample unless
    the run set excluded.all=true)."""
    from rich.panel import Panel
    from rich.text import Text

    from curator.excluded import read_excluded, reason_table
    rd = finished_run(run)
    reasons = reason_table(rd)
    if reason is None:
        print_table("excluded documents", ["reason", "decision", "in run", "in excluded/"], reasons)
        return
    try:
        docs = read_excluded(rd, reason, n)
    except KeyError:
        in_run = {r: docs for r, _, docs, _ in reasons}
        if reason in in_run:
            missed = (
                f"--reason {reason}: {in_run[reason]} documents left the run for it, none is "
                f"in {rd.excluded} (the sample missed them); curate to a new output with "
                "--set excluded.all=true or a higher excluded.sample_rate to keep them"
            )
            _fail(ConfigError(missed))
        unknown = (
            f"--reason {reason!r} is not a reason of this run; its reasons are "
            f"{sorted(in_run)} (`curator show {run}` lists them with counts)"
        )
        _fail(ConfigError(unknown))
    out = Console()
    for doc in docs.to_pylist():
        text = doc["text"] if doc["text"] is not None else f"(no text: {doc['error']})"
        clipped = text[:chars] + (" [...]" if len(text) > chars else "")
        where = f"{doc['reason']} | {doc['source']} record {doc['record']}"
        if doc.get("input_id"):
            where += f" | id {doc['input_id']}"
        if doc.get("duplicate_of"):
            where += f" | duplicate of {doc['duplicate_of']}"
        body = Text.assemble((where, "dim"), "\n\n", clipped)  # Text: no markup in documents
        out.print(Panel(body, title=Text(doc["doc_id"]), title_align="left"))


@app.command()
def sql(
    run: Annotated[str, typer.Argument(help="RUN directory.")],
    query_text: Annotated[
        str, typer.Argument(metavar="QUERY", help="SQL over manifest, shards, excluded, funnel.")
    ],
) -> None:
    """Run SQL on the run's DuckDB catalog (the `duckdb` CLI works too: cd RUN first)."""
    from curator.catalog import query
    rd = finished_run(run)
    import duckdb

    try:
        columns, rows = query(rd, query_text)
    except duckdb.Error as err:
        _fail(ConfigError(f"query failed: {err}"))
    print_table(query_text, columns, rows)


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="Finished RUN directory.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the export.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="parquet, jsonl, bin or megatron.")
    ] = "parquet",
    schedule: Annotated[
        str, typer.Option(help="phases, linear, step, uniform, or a schedule YAML file.")
    ] = "phases",
    seed: Annotated[int, typer.Option(help="Seed of the shuffles.")] = 0,
    on_exhausted: Annotated[
        Literal["fill", "truncate"],
        typer.Option(
            help="When a stage runs out of documents: 'fill' places every kept document (its "
            "share goes to the nearest stage); 'truncate' follows the schedule exactly and "
            "leaves out the documents that do not fit.",
        ),
    ] = "fill",
    with_text: Annotated[
        bool, typer.Option(help="parquet: add the run's normalized text as a `text` column.")
    ] = False,
    set: SetOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export.")] = False,
) -> None:
    """Export a run's kept documents in curriculum order (see curator/export.py for formats);
    prints the tokens placed per phase and stage, and any left out."""
    from curator.export import ExportConfig, run_export

    base = {
        "run": run,
        "output": output,
        "format": format,
        "schedule": schedule,
        "seed": seed,
        "on_exhausted": on_exhausted,
        "with_text": with_text,
        "overwrite": overwrite,
    }
    try:
        cfg = load_model(ExportConfig, None, set, base=base)
        summary = run_export(cfg)  # type: ignore[arg-type]
    except ConfigError as err:
        _fail(err)
    _print_placement(summary)
    console.print(f"[green]done[/green] {output}")


def _print_placement(summary: dict) -> None:
    """Tokens per phase and stage (with each phase's scheduled and actual mix), then placed vs
    kept, on stderr: the export's stdout stays free for scripts."""
    placed = summary["phase_tokens"]
    k = summary["n_stages"]
    names = ["easy", "medium", "hard"] if k == 3 else [f"stage {i}" for i in range(k)]
    table = Table(
        title=f"export placement: schedule '{summary['schedule']['name']}', "
        f"on_exhausted={summary['on_exhausted']} (tokens)"
    )
    for c in ["phase", "until", *names, "total", "mix %", "actual %"]:
        table.add_column(c, justify="left" if "%" in c or c == "phase" else "right")
    for i, (phase, row) in enumerate(zip(summary["schedule"]["phases"], placed, strict=True)):
        mix = phase["mix"]
        want = "as kept" if mix is None else "/".join(f"{100 * m / sum(mix):.0f}" for m in mix)
        got = "/".join(f"{100 * t / max(1, sum(row)):.0f}" for t in row)
        table.add_row(
            str(i), f"{phase['until']:g}", *(f"{t:,}" for t in row), f"{sum(row):,}", want, got
        )
    left = summary["left_out_tokens_per_stage"]
    if any(left):
        table.add_row("left out", "", *(f"{t:,}" for t in left), f"{sum(left):,}", "", "")
    console.print(table)
    console.print(
        f"placed {summary['tokens']:,} of {summary['kept_tokens']:,} kept tokens "
        f"({summary['docs']:,} of {summary['kept_docs']:,} documents)"
    )
    if summary["left_out_docs"]:
        console.print(
            f"[yellow]left out[/yellow] {summary['left_out_tokens']:,} tokens "
            f"({summary['left_out_docs']:,} documents) to follow the schedule exactly; "
            "--on-exhausted fill keeps every kept document"
        )


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="RUN directory.")],
    schedule: Annotated[str, typer.Option(help="Schedule whose mix the report plots.")] = (
        "phases"
    ),
) -> None:
    """Write RUN/report.html: funnel, score histograms, curriculum mix, loop results."""
    from curator.report import write_report
    rd = finished_run(run)
    try:
        path = write_report(rd, schedule=schedule)
    except ConfigError as err:
        _fail(err)
    console.print(f"[green]wrote[/green] {path}")


@app.command()
def train(
    config: ConfigOpt = None,
    set: SetOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No per-step progress lines.")
    ] = False,
) -> None:
    """Train the bundled DSA language model on a run's shards (see configs/train_tiny.yaml).

    Prints `step N/M: train X, val Y, tok/s Z, ETA mm:ss` lines as it goes; writes
    OUT/summary.json (every step's loss) and OUT/loss.png (train and held-out loss)."""
    from curator.trainer.cli import train_command

    try:
        result = train_command(str(config) if config else None, set or [], quiet=quiet)
    except (ConfigError, FileNotFoundError) as err:  # bad config, or data.path holds no data
        _fail(err)
    # Per-step curves live in OUT/summary.json and OUT/loss.png; the console gets the headline.
    brief = {k: v for k, v in result.items() if k not in {"losses", "heldout", "workers"}}
    console.print(json.dumps(brief, default=str))


@app.command()
def score(
    output: Annotated[str, typer.Option("--output", "-o", help="Output .parquet file.")],
    input: InputOpt = None,
    policy: Annotated[
        str | None,
        typer.Option(help="Policy checkpoint, 'default' (the shipped policy) or 'heuristic'."),
    ] = None,
    text_field: Annotated[str, typer.Option(help="Field holding the text.")] = "text",
    id_field: Annotated[str, typer.Option(help="Field holding the input's id.")] = "id",
    quiet: QuietOpt = False,
) -> None:
    """Score every input record: doc_id, input_id, quality_score (higher = better), features."""
    from policies.score_job import run_score

    if not input:
        _fail(ConfigError("no --input given; pass --input PATH (repeatable)"))
    try:
        summary = run_score(
            list(input or []), output, policy, text_field=text_field, id_field=id_field,
            quiet=quiet,
        )
    except (ConfigError, FileNotFoundError, ValueError) as err:
        _fail(err)
    console.print(f"[green]done[/green] {json.dumps(summary)}")


agent_app = typer.Typer(
    no_args_is_help=True, help="The reinforcement-learned quality agent.", context_settings=HELP
)
app.add_typer(agent_app, name="agent")


@agent_app.command("train")
def agent_train(config: ConfigOpt = None, set: SetOpt = None) -> None:
    """Train a policy (REINFORCE or PPO) in the curation environment; saves a checkpoint."""
    from jobs.agent import train_agent
    from policies.config import load_agent_config

    try:
        summary = train_agent(load_agent_config(config, set or []))
    except ConfigError as err:
        _fail(err)
    console.print(
        json.dumps({k: v for k, v in summary.items() if k != "episodic_returns"}, default=str)
    )


@app.command()
def loop(config: ConfigOpt = None, set: SetOpt = None, quiet: QuietOpt = False) -> None:
    """Closed train-and-filter loop: arms side by side at equal tokens; writes RUN/report.html."""
    from curator.loop.config import load_loop_config
    from curator.loop.driver import loop_arm_verdict, run_loop

    try:
        cfg = load_loop_config(config, [*(set or []), *(["quiet=true"] if quiet else [])])
        summary = run_loop(cfg)
    except ConfigError as err:
        _fail(err)
    print_table(
        f"closed loop: target loss {summary['target_loss']:.4f} (random's final)",
        ["arm", "seeds", "final loss", "std", "tokens to target"],
        [
            (
                r["arm"],
                r["seeds"],
                f"{r['final_loss']:.4f}",
                f"{r['final_loss_std']:.4f}",
                "never" if r["tokens_to_target"] is None else f"{r['tokens_to_target']:.0f}",
            )
            for r in summary["arms"]
        ],
    )
    if "loop" in cfg.arms:  # a loop arm that never left the round-0 policy is the static arm
        console.print(loop_arm_verdict(summary["updates"], "static" in cfg.arms))
    console.print(f"[green]report[/green] {Path(cfg.output) / 'report.html'}")


@app.command("demo-corpus")
def demo_corpus(
    output: Annotated[str, typer.Argument(help="Folder to write the corpus to.")],
) -> None:
    """Build an offline real-text corpus from installed packages' docs/licenses and pydoc topics."""
    from curator.demo_corpus import build_demo_corpus

    console.print(json.dumps(build_demo_corpus(output)))


@app.command("config-reference")
def config_reference() -> None:
    """Print every config field of a curation job with its default and description."""
    from curator.config_reference import render_reference

    sys.stdout.write(render_reference(CurateConfig))


# Errors of the user's making (paths, config, a cluster that cannot start): one line naming the
# problem and the fix, exit 2. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
)


def run() -> None:
    """The `curator` console script: the typer app with user errors reported without traces."""
    from curator.arrow_allocator import prefer_returning_allocator

    prefer_returning_allocator()  # before anything imports pyarrow (it reads the pool once)
    from curator.embedded_ray import RayStartError

    try:
        app()
    except (*USER_ERRORS, RayStartError) as err:
        console.print(f"[red]error:[/red] {err}")
        sys.exit(2)


if __name__ == "__main__":
    run()

"""The `vaglio` command line: the same functions the flows call, with progress and summaries."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from collections import Counter
from dataclasses import asdict
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from licenses import PolicyError, judge_license
from manifests.views import SHARD_LIST
from pipeline.asr import MissingExtraError
from pipeline.catalog import CatalogError, load_catalog
from pipeline.config import ConfigError, load_config
from pipeline.curate import CurationResult, ThreadExecutor, curate
from pipeline.evaluation import (
    OVERALL,
    EvaluationError,
    Score,
    read_pairs,
    read_source_pairs,
    read_workdir_pairs,
    score,
)
from pipeline.llm import LlmRequestError
from pipeline.mosel import PUBLISHED_LIST, mosel_catalog
from pipeline.plan import SourcePlan
from pipeline.report import write_report
from pipeline.runner import ShardOutcome
from pipeline.sql import ReadOnlyError, run_query
from pipeline.stage import StageConfigError
from pipeline.stages.filter import TextRowError, judge, read_text_rows
from pipeline.summary import summarize
from pipeline.survey import (
    compliant_hours,
    compliant_totals,
    survey_source,
    survey_sources,
    survey_table,
    write_survey,
)

app = typer.Typer(
    help="vaglio: curate openly licensed speech corpora into clean, traceable training data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


class Engine(str, Enum):
    prefect = "prefect"
    threads = "threads"


Workdir = Annotated[
    Path, typer.Option("--workdir", "-w", help="Folder for every output of the run.")
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Your licence policy YAML instead of vaglio's `licenses/policy.yaml`.",
        show_default=False,
    ),
]
EngineOption = Annotated[Engine, typer.Option(help="Run as a Prefect flow, or on plain threads.")]


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


class RichStageProgress:
    """One progress bar per stage, advanced as shards finish (skipped ones included)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.bars: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.bars[stage] = self.progress.add_task(stage, total=total)

    def advance(self, outcome: ShardOutcome) -> None:
        self.progress.advance(self.bars[outcome.stage])


def _orchestrator(engine: Engine):
    if engine is Engine.threads:
        return lambda catalog, workdir, config, progress: curate(
            catalog, workdir, config, ThreadExecutor(config.workers), progress
        )
    # Progress bars say what happens; Prefect's own logs and telemetry stay quiet.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    (found,) = entry_points(group="vaglio.orchestrators", name=engine.value)
    return found.load()


def run_curation(
    catalog: Path,
    workdir: Path,
    config_path: Path | None,
    engine: Engine,
    policy: Path | None = None,
) -> CurationResult:
    """Load config, run the stages with progress bars, print the summary."""
    try:
        config = load_config(config_path)
        if policy is not None:
            config = dataclasses.replace(config, license_policy=str(policy))
        orchestrate = _orchestrator(engine)
        columns = (
            TextColumn("{task.description:>12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shards"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            result = orchestrate(catalog, workdir, config, RichStageProgress(progress))
    except (CatalogError, ConfigError, StageConfigError, MissingExtraError, PolicyError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    except LlmRequestError as error:
        console.print(
            f"[red]error:[/red] {escape(str(error))}\nCompleted shards are kept: run the same "
            "command again to go on from where this stopped."
        )
        raise typer.Exit(1) from None
    print_summary(result)
    return result


def print_plan(plan: SourcePlan) -> None:
    """One line per source: what is processed, what is refused and why."""
    name = plan.source.name
    if plan.error:
        console.print(f"[red]✗[/red] {name}: cannot be read: {escape(plan.error)}")
        return
    for text, verdict in plan.verdicts.items():
        if not verdict.allowed:
            files = plan.files_by_licence[text]
            which = f"{files} files under licence" if files else "licence"
            console.print(
                f"[red]✗[/red] {name}: refused {which} {escape(repr(text))}: "
                f"{escape(verdict.reason)}"
            )
    if plan.source.kind == "metadata":
        if any(v.allowed for v in plan.verdicts.values()):
            console.print(f"· {name}: metadata only (no audio), see `vaglio survey`")
    elif plan.planned_files:
        licences = ", ".join(sorted({str(v.spdx_id) for v in plan.verdicts.values() if v.allowed}))
        quarantined = f", {plan.quarantined} quarantined" if plan.quarantined else ""
        console.print(
            f"[green]✓[/green] {name}: {licences}, {plan.planned_files} files in "
            f"{len(plan.shard_ids)} shards{quarantined}"
        )


def print_summary(result: CurationResult) -> None:
    for plan in result.plans:
        print_plan(plan)
    summary = summarize(result.workdir)
    ran = sum(not o.skipped for o in result.outcomes)
    console.print(
        f"shard tasks run: {ran}, skipped as already complete: {len(result.outcomes) - ran}"
    )
    table = Table(title="curation summary", show_header=False)
    table.add_row("recordings", str(summary.recordings))
    table.add_row("hours in", f"{summary.hours_in:.3f}")
    for reason, count in summary.quarantined.items():
        table.add_row(f"  quarantined: {reason}", str(count))
    table.add_row("  exact duplicates", str(summary.duplicates))
    table.add_row("  no speech found", str(summary.without_speech))
    table.add_row("segments", str(summary.segments))
    table.add_row("segments kept", str(summary.segments_kept))
    table.add_row("hours kept", f"{summary.hours_kept:.3f}")
    for reason, (count, hours) in summary.dropped.items():
        table.add_row(f"  dropped: {reason}", f"{count} segments, {hours:.3f} h")
    for status, count in summary.punctuation.items():
        table.add_row(f"punctuation: {status}", f"{count} segments")
    for (lang, outcome), count in summary.translations.items():
        table.add_row(f"translation to {lang}: {outcome}", f"{count} segments")
    console.print(table)


@app.command("curate")
def curate_command(
    catalog: Annotated[Path, typer.Argument(help="Catalog YAML listing the sources.")],
    workdir: Workdir,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline YAML.")] = None,
    engine: EngineOption = Engine.prefect,
    policy: PolicyOption = None,
) -> None:
    """Curate every source of a catalog whose licence is open.

    Stages: standardise (16 kHz mono, checksums, quarantine), segment (Silero VAD),
    pass1 (language gate, timed transcript), pass2 (utterances re-transcribed on their own),
    filter (hallucinations, language, pass disagreement), shard (Parquet with audio).
    Refused sources are listed with the reason. Re-running on the same workdir skips
    completed shards; a changed config re-runs only the stages it affects.
    """
    run_curation(catalog, workdir, config, engine, policy)


@app.command("survey")
def survey_command(
    catalog: Annotated[Path, typer.Argument(help="Catalog YAML listing the sources.")],
    workdir: Workdir,
    policy: PolicyOption = None,
) -> None:
    """Survey a catalog: licence verdicts and hours per language, without decoding audio.

    Every licence a source states (per source, split or file) is judged on its own. Durations
    come from manifests where they are given, else from file headers; `metadata` sources
    give their hours in the catalog. Writes `survey/sources.parquet` (the SQL view
    `sources`), `survey/report.md` and `survey/hours_by_language.png` under the workdir.
    """
    try:
        sources = load_catalog(catalog)
        columns = (TextColumn("survey"), BarColumn(), MofNCompleteColumn(), TextColumn("sources"),
                   TextColumn("{task.description}"), TimeElapsedColumn())  # fmt: skip
        rows = []
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("", total=len(sources))
            for source in sources:
                progress.update(task, description=source.name)
                rows += survey_source(source, policy)
                progress.advance(task)
    except (CatalogError, PolicyError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    table = survey_table(rows)
    folder = write_survey(table, workdir)
    view = Table("source", "licence", "verdict", "language", "hours", "labelled")
    for row in table.to_pylist():
        if row["error"]:
            verdict = f"[red]cannot be read[/red]: {escape(row['error'])}"
        elif row["allowed"]:
            verdict = "[green]allowed[/green]"
        else:
            verdict = f"[red]refused[/red]: {escape(row['reason'])}"
        unreadable = row["unreadable_files"]
        if unreadable:
            verdict += f" ({unreadable} of {row['files']} files unreadable)"
        labelled = "" if row["labelled"] is None else ("yes" if row["labelled"] else "no")
        hours = "" if row["hours"] is None else f"{row['hours']:.2f}"
        view.add_row(row["source"], row["spdx_id"] or escape(row["license_text"]), verdict,
                     row["language"] or "", hours, labelled)  # fmt: skip
    console.print(view)
    totals = compliant_hours(table)
    kinds = compliant_totals(table)
    console.print(
        f"compliant hours: {sum(totals.values()):.2f} ({kinds['labelled']:.2f} transcribed, "
        f"{kinds['unlabelled']:.2f} not, {kinds['unknown']:.2f} not said); by language: "
        + ", ".join(f"{lang} {hours:.2f}" for lang, hours in totals.items())
    )
    console.print(f"report, chart and table: {folder}/")


@app.command("mosel-catalog")
def mosel_catalog_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Catalog YAML to write.")],
    tsv: Annotated[
        Path,
        typer.Argument(help="MOSEL's source list (TSV); by default the copy vaglio ships."),
    ] = PUBLISHED_LIST,
) -> None:
    """Write a metadata-only catalog of MOSEL's sources, ready for `vaglio survey`.

    Each row becomes a `kind: metadata` source with its licence, hours, languages and
    whether it is transcribed. Known typos in the published list are corrected and
    reported; MOSEL's own pseudo-label release is left out (it labels audio already listed).

    Example: `vaglio mosel-catalog -o mosel.yaml`
    """
    try:
        built = mosel_catalog(tsv)
    except (CatalogError, OSError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    for note in built.notes:
        console.print(f"note: {escape(note)}")
    output.write_text(yaml.safe_dump({"sources": built.sources}, sort_keys=False))
    console.print(f"{len(built.sources)} sources written to {output}")


@app.command("report")
def report_command(
    workdir: Workdir,
    examples: Annotated[
        int, typer.Option("--examples", "-n", min=0, help="Dropped rows shown per rule.")
    ] = 3,
) -> None:
    """Write a report of a curated workdir: where the hours went, and what each rule dropped.

    `<workdir>/report/` gets `report.md` and `report.html` (the hours left after each step,
    drops per rule and language, punctuation and translation outcomes, examples of dropped
    rows) with two charts, `funnel.png` and `drops.png`.
    """
    if not (workdir / SHARD_LIST).exists():
        console.print(f"[red]error:[/red] {escape(str(workdir))} holds no curation run")
        raise typer.Exit(2)
    folder = write_report(workdir, examples)
    console.print(f"report: {folder / 'report.html'} (and report.md, funnel.png, drops.png)")


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="One SELECT over the workdir's views.")],
    workdir: Workdir,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Run read-only DuckDB SQL over a workdir's manifests.

    Views: `recordings` (one row per file, with quarantine_reason and duplicate_of),
    `segments` (segment_id, source, recording_id, offset, duration, lang, lang_prob, text,
    license, attribution, drop_reason, shard, text_pass1, pass_wer), `segments_all` (every
    column), `drops` (segments and hours per drop_reason and lang) and `sources` (the latest
    `vaglio survey`). Statements that write are refused.
    """
    try:
        result = run_query(workdir, query)
    except ReadOnlyError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    except Exception as error:  # DuckDB's parser and binder errors are the user's to read
        console.print(f"[red]SQL error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    rows = result.to_pylist()
    if output is OutputFormat.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1, default=str)
        sys.stdout.write("\n")
    elif output is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.column_names)
        writer.writerows([[row[c] for c in result.column_names] for row in rows])
    else:
        table = Table(*result.column_names)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        Console().print(table)


class EvalFormat(str, Enum):
    table = "table"
    json = "json"


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.2f}"


def print_scores(scores: list[Score], output: EvalFormat) -> None:
    """The scores on stdout, so that `--format json` can be piped; notes go to stderr."""
    if output is EvalFormat.json:
        for s in scores:
            sys.stdout.write(json.dumps(s.as_dict(), ensure_ascii=False) + "\n")
        return
    table = Table("lang", title="error rates")
    for column in ("utterances", "words", "WER %", "CER %"):
        table.add_column(column, justify="right")
    for s in scores:
        if s.lang == OVERALL:
            table.add_section()
        row = (s.lang, str(s.utterances), str(s.words), _percent(s.wer), _percent(s.cer))
        table.add_row(*(escape(cell) for cell in row), style="bold" if s.lang == OVERALL else None)
    Console().print(table)
    skipped = scores[-1].empty_references
    if skipped:
        console.print(f"utterances with an empty reference, skipped: {skipped}")


@app.command("eval")
def eval_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="TSV, CSV, Parquet or JSON-lines file with `reference`, `hypothesis` and "
            "`lang` columns.",
            show_default=False,
        ),
    ] = None,
    references: Annotated[
        Path | None,
        typer.Option(
            "--references",
            "-r",
            help="Reference transcripts (`segment_id`, `reference`, optional `lang`) to score "
            "the transcripts of `--workdir` against.",
            show_default=False,
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", "-w", help="A curated workdir.", show_default=False),
    ] = None,
    all_rows: Annotated[
        bool, typer.Option("--all-rows", help="Score dropped segments too.")
    ] = False,
    against_source: Annotated[
        bool,
        typer.Option(
            "--against-source",
            help="Score the workdir's pseudo-labels against the transcripts its sources came "
            "with (`text_source`).",
        ),
    ] = False,
    output: Annotated[EvalFormat, typer.Option("--format", "-f")] = EvalFormat.table,
) -> None:
    """Word and character error rates per language, to judge an ASR backend on your data.

    Either score a FILE of reference/hypothesis pairs, or score a curated workdir's
    transcripts against `--references`, joined on `segment_id` (kept segments only unless
    `--all-rows`; the language comes from the references where they give it, else from the
    segment). Both sides are normalised first (lower case, no punctuation, no bracketed
    asides); rates are corpus-level: all edits over all reference words (characters).
    Utterances whose reference is empty are skipped and counted.

    `--format json` prints one JSON object per line: each language, then `overall`.

    Examples:

    * `vaglio eval pairs.tsv`
    * `vaglio eval --references refs.tsv --workdir work --format json`
    * `vaglio eval --against-source --workdir work` (sources that bring transcripts)
    """
    try:
        if against_source:
            if workdir is None or file is not None or references is not None:
                raise EvaluationError("--against-source takes --workdir alone")
            print_scores(score(read_source_pairs(workdir)), output)
            return
        if file is not None and (references is not None or workdir is not None):
            raise EvaluationError("give either FILE or --references with --workdir, not both")
        if file is not None:
            if all_rows:
                raise EvaluationError("--all-rows applies to --references with --workdir")
            pairs = read_pairs(file)
        elif references is not None and workdir is not None:
            joined = read_workdir_pairs(references, workdir, all_rows)
            pairs = joined.pairs
            if joined.unmatched:
                where = escape(str(workdir))
                console.print(f"references without a segment in {where}: {joined.unmatched}")
            if joined.dropped and not all_rows:
                console.print(
                    f"references of dropped segments, left out (--all-rows scores them): "
                    f"{joined.dropped}"
                )
        elif references is not None or workdir is not None:
            raise EvaluationError("--references and --workdir go together")
        else:
            raise EvaluationError("give a FILE, or --references with --workdir")
    except EvaluationError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    print_scores(score(pairs), output)


@app.command("filter-text")
def filter_text_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="Rows `duration<TAB>text` (seconds, transcript); `-` or none reads stdin.",
            show_default=False,
        ),
    ] = None,
    lang: Annotated[
        str, typer.Option("--lang", "-l", help="Language of the audio, e.g. `it`.")
    ] = ...,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Pipeline YAML; its `filter:` section applies."),
    ] = None,
    output: Annotated[EvalFormat, typer.Option("--format", "-f")] = EvalFormat.table,
) -> None:
    """Run the hallucination filter on transcripts without audio, to tune its thresholds.

    Prints every row with its `drop_reason` (empty when kept) and counts per reason on
    stderr. Applies every rule of the curate `filter` stage except the pass-1/pass-2
    disagreement, which needs two ASR passes. A malformed row (no tab, a duration that is not
    a number of seconds) stops the run with its line number and exit code 2; blank lines and
    a `duration<TAB>text` header are skipped. `--format json` prints JSON lines with `line`,
    `duration`, `text`, `drop_reason` (null when kept), `text_lang` and `text_lang_prob`.

    Example:

    * `printf '2.0\\tThanks for watching!\\n3.5\\tWe met at the station.\\n' | vaglio
      filter-text --lang en`
    """
    try:
        settings = load_config(config).filter
        if file is None or str(file) == "-":
            rows = read_text_rows(sys.stdin)
        else:
            with file.open(encoding="utf-8") as lines:
                rows = read_text_rows(lines)
    except (ConfigError, StageConfigError, TextRowError, OSError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    verdicts = [judge(row.text, row.duration, lang, settings) for row in rows]
    if output is EvalFormat.json:
        for row, verdict in zip(rows, verdicts):
            record = {"line": row.line, "duration": row.duration, "text": row.text}
            sys.stdout.write(json.dumps(record | asdict(verdict), ensure_ascii=False) + "\n")
    else:
        table = Table("line", "duration", "drop_reason", "text")
        for row, verdict in zip(rows, verdicts):
            table.add_row(
                str(row.line), f"{row.duration:g}", verdict.drop_reason or "", escape(row.text)
            )
        Console().print(table)
    counts = Counter(v.drop_reason for v in verdicts if v.drop_reason)
    console.print(
        f"kept {len(rows) - sum(counts.values())} of {len(rows)}"
        + "".join(f", {reason} {n}" for reason, n in counts.most_common())
    )


@app.command("demo")
def demo_command(
    workdir: Workdir,
    engine: EngineOption = Engine.prefect,
) -> None:
    """Synthesise a small demo corpus with espeak-ng and curate it.

    English and Italian speech with pauses, a long file, a silent, a corrupt, a truncated
    and a duplicated file, a German file its source does not declare, a NeMo manifest whose
    windows bring their own transcripts, and a non-commercial source that must be refused.
    Also writes the source survey and the curation report.
    """
    from pipeline.demo_corpus import build_demo_corpus

    console.print("building the demo corpus with espeak-ng…")
    catalog = build_demo_corpus(workdir / "corpus")
    run_curation(catalog, workdir, None, engine)
    survey = write_survey(survey_sources(load_catalog(catalog)), workdir)
    report = write_report(workdir)
    program = sys.argv[0] if Path(sys.argv[0]).name == "vaglio" else "vaglio"
    console.print(
        f"\nresults: {workdir}/dataset/data/*.parquet (audio + text), "
        f"manifests in {workdir}/shard/\nreport: {report}/report.html · "
        f"survey: {survey}/report.md",
        soft_wrap=True,
    )
    console.print(
        f'try:\n  {program} sql "SELECT lang, count(*) AS segments, '
        "round(sum(duration)/60, 1) AS minutes FROM segments "
        f'WHERE drop_reason IS NULL GROUP BY lang" --workdir {workdir}',
        soft_wrap=True,
    )


@app.command("license")
def license_command(
    statements: Annotated[
        list[str],
        typer.Argument(
            metavar="TEXT",
            help="Licence statements as sources write them; `-` reads one per line from stdin.",
            show_default=False,
        ),
    ],
    policy: PolicyOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table, csv or json, on stdout.")
    ] = OutputFormat.table,
) -> None:
    """Normalise licence statements to SPDX ids and judge them against the licence policy.

    For each statement: the SPDX id (`unknown` if not recognised), allowed or refused, the
    reason, and the obligations (attribution, share-alike…) that travel with the data.
    "A or B" lets you pick the open alternative; licences that apply together ("A and B",
    one per split) must all be allowed; a name without the version that decides ("CC BY")
    is unknown. Exit code 0 when all are allowed, 1 when any is refused, 2 when the policy
    file cannot be used.

    A policy file has `rules:`, each with `match` (a glob over SPDX ids), `allowed`,
    `reason` and `obligations`; the first match wins. Start it with `extends: default` to
    fall back to vaglio's rules for everything yours do not match.

    Examples:

    * `vaglio license "CC BY-NC 4.0"`
    * `vaglio license "CC0" "cc-by-sa-4.0" "Apache License, Version 2.0" --format json`
    * `cut -f2 sources.tsv | vaglio license -`
    * `vaglio license "CC BY-NC 4.0" --policy internal-project.yaml`
    """
    texts = [
        line.strip()
        for statement in statements
        for line in (sys.stdin if statement == "-" else [statement])
        if line.strip() or statement != "-"  # blank lines of stdin are no statements
    ]
    try:
        if not texts:
            raise PolicyError("no licence statements given (stdin was empty)")
        verdicts = [judge_license(text, policy) for text in texts]
    except PolicyError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    rows = [
        {"text": v.text, "spdx_id": v.spdx_id, "expression": v.expression,
         "allowed": v.allowed, "reason": v.reason, "obligations": list(v.obligations)}
        for v in verdicts
    ]  # fmt: skip
    if output is OutputFormat.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif output is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{**r, "obligations": " ".join(r["obligations"])} for r in rows])
    else:
        table = Table("licence", "SPDX id", "verdict", "reason", "obligations")
        for v in verdicts:
            verdict = "[green]allowed[/green]" if v.allowed else "[red]refused[/red]"
            table.add_row(escape(v.text), v.spdx_id or "unknown", verdict, escape(v.reason),
                          ", ".join(v.obligations))  # fmt: skip
        Console().print(table)
    raise typer.Exit(0 if all(v.allowed for v in verdicts) else 1)


if __name__ == "__main__":
    app()

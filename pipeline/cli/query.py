"""`vaglio report`, `sql`, `eval` and `filter-text`: looking at what a curation produced."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import (
    OutputFormat,
    Workdir,
    app,
    console,
    require_curation,
    write_error,
)
from pipeline.query.limits import QueryLimits

if TYPE_CHECKING:
    from pipeline.query.evaluation import Score


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
    rows, audio quality per source) with charts: `funnel.png`, `drops.png`, and `quality.png`
    (histograms of DNSMOS OVRL and SNR per source) where rows were rated.
    """
    from pipeline.run.report import write_report

    require_curation(workdir)
    try:
        folder = write_report(workdir, examples)
    except OSError as error:
        console.print(f"[red]error:[/red] {escape(write_error(error, workdir / 'report'))}")
        raise typer.Exit(2) from None
    charts = ", ".join(sorted(p.name for p in folder.glob("*.png")))
    console.print(f"report: {folder / 'report.html'} (and report.md, {charts})")


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="One SELECT over the workdir's views.")],
    workdir: Workdir,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="Memory the query may use, e.g. 500MB, 8GB.")
    ] = QueryLimits.memory,
    max_spill: Annotated[
        str, typer.Option("--max-spill", help="Disk it may spill to past that, e.g. 50GB.")
    ] = QueryLimits.spill,
    spill_dir: Annotated[
        Path | None,
        typer.Option("--spill-dir", help="Where it spills; default: WORKDIR/.sql-spill."),
    ] = None,
) -> None:
    """Run read-only DuckDB SQL over a workdir's manifests.

    Views: `recordings` (one row per file, with quarantine_reason and duplicate_of),
    `segments` (segment_id, source, recording_id, offset, duration, lang, lang_prob, text,
    license, attribution, drop_reason, shard, text_pass1, pass_wer), `segments_all` (every
    column), `drops` (segments and hours per drop_reason and lang) and `sources` (the latest
    `vaglio survey`). Only the views can be read: statements that write, and table functions
    that read files (`read_csv`, `read_parquet`...), are refused. A query that outgrows
    `--memory-limit` spills to disk (removed afterwards); Ctrl-C stops it at once.
    """
    from rich.console import Console
    from rich.table import Table

    from manifests.views import SHARD_LIST, SOURCES_TABLE, SURVEY_DIR
    from pipeline.query.sql import ReadOnlyError, run_query

    if not workdir.is_dir():
        console.print(f"[red]error:[/red] {escape(str(workdir))}: no such workdir")
        raise typer.Exit(2)
    if not (workdir / SHARD_LIST).exists() and not (workdir / SURVEY_DIR / SOURCES_TABLE).exists():
        console.print(f"[red]error:[/red] {escape(str(workdir))} holds no curation run or survey")
        raise typer.Exit(2)
    try:
        result = run_query(workdir, query, QueryLimits(memory_limit, max_spill, spill_dir))
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
    from rich.console import Console
    from rich.table import Table

    from pipeline.query.evaluation import OVERALL

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
    from pipeline.query.evaluation import (
        EvaluationError,
        read_pairs,
        read_source_pairs,
        read_workdir_pairs,
        score,
    )

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
    disagreement, which needs two ASR passes, and the audio quality rules. A malformed row (no
    tab, a duration that is not a number of seconds) stops the run with its line number and
    exit code 2; blank lines and a `duration<TAB>text` header are skipped. `--format json`
    prints JSON lines with `line`, `duration`, `text`, `drop_reason` (null when kept),
    `text_lang` and `text_lang_prob`.

    Example:

    * `printf '2.0\\tThanks for watching!\\n3.5\\tWe met at the station.\\n' | vaglio
      filter-text --lang en`
    """
    from rich.console import Console
    from rich.table import Table

    from pipeline.config import ConfigError, load_config
    from pipeline.stage import StageConfigError
    from pipeline.stages.filter import TextRowError, judge, read_text_rows, utf8_lines
    from pipeline.text.languages import is_language_code
    from pipeline.text.written import written_form

    if not is_language_code(lang):
        console.print(f"[red]error:[/red] --lang {escape(repr(lang))} is not an ISO 639 code "
                      "(like 'en' or 'it')")  # fmt: skip
        raise typer.Exit(2)
    try:
        curation = load_config(config)
        settings, written = curation.filter, curation.pass2.written
        if file is None or str(file) == "-":
            rows = read_text_rows(utf8_lines(sys.stdin.buffer))
        else:
            with file.open("rb") as raw:
                rows = read_text_rows(utf8_lines(raw))
    except TextRowError as error:
        where = "" if file is None or str(file) == "-" else f"{file}: "
        console.print(f"[red]error:[/red] {escape(where + str(error))}")
        raise typer.Exit(2) from None
    except OSError as error:
        console.print(f"[red]error:[/red] {escape(f'{error.filename}: {error.strerror}')}")
        raise typer.Exit(2) from None
    except (ConfigError, StageConfigError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    verdicts = [
        judge(written_form(row.text, lang, written).text, row.duration, lang, settings)
        for row in rows
    ]
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

"""`vaglio survey`, `mosel-catalog` and `license`: what sources hold, and whether to use it."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import (
    OutputFormat,
    PolicyOption,
    Workdir,
    app,
    console,
    write_error,
)
from pipeline.data import MOSEL_SOURCES


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from licenses import PolicyError
    from pipeline.sources.catalog import CatalogError, load_catalog
    from pipeline.sources.survey import (
        compliant_hours,
        compliant_totals,
        survey_source,
        survey_table,
        write_survey,
    )

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
    try:
        folder = write_survey(table, workdir)
    except OSError as error:
        console.print(f"[red]error:[/red] {escape(write_error(error, workdir))}")
        raise typer.Exit(2) from None
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
    ] = MOSEL_SOURCES,
) -> None:
    """Write a metadata-only catalog of MOSEL's sources, ready for `vaglio survey`.

    Each row becomes a `kind: metadata` source with its licence, hours, languages and
    whether it is transcribed. Known typos in the published list are corrected and
    reported; MOSEL's own pseudo-label release is left out (it labels audio already listed).

    Example: `vaglio mosel-catalog -o mosel.yaml`
    """
    import yaml

    from pipeline.sources.catalog import CatalogError
    from pipeline.sources.mosel import mosel_catalog

    try:
        built = mosel_catalog(tsv)
    except (CatalogError, OSError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    for note in built.notes:
        console.print(f"note: {escape(note)}")
    try:
        output.write_text(yaml.safe_dump({"sources": built.sources}, sort_keys=False))
    except OSError as error:
        console.print(f"[red]error:[/red] {escape(write_error(error, output))}")
        raise typer.Exit(2) from None
    console.print(f"{len(built.sources)} sources written to {output}")


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
    from rich.console import Console
    from rich.table import Table

    from licenses import PolicyError, judge_license

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
            shown = v.text if len(v.text) <= 80 else v.text[:79] + "…"  # JSON and CSV keep it all
            table.add_row(escape(shown), v.spdx_id or "unknown", verdict, escape(v.reason),
                          ", ".join(v.obligations))  # fmt: skip
        Console().print(table)
    raise typer.Exit(0 if all(v.allowed for v in verdicts) else 1)

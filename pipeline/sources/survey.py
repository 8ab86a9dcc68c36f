"""The source survey: each source's licence verdicts and hours per language, without decoding.

Durations come from the source's manifest where it states them, else from file headers
(libsndfile, else the container's declared duration through PyAV), so a survey of many
hours takes seconds; `metadata` sources give their hours in the catalog. One row per
source, licence and language; hours that a source gives for several languages together are
reported under `mul` rather than split by guesswork.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from licenses.policy import LicenseVerdict, judge_license
from manifests.schemas import SOURCES
from manifests.views import SOURCES_TABLE, SURVEY_DIR
from pipeline.audio.decode import header_seconds
from pipeline.run.runner import atomic_write_table, atomic_write_text
from pipeline.sources import SourceItem, SourceReadError, read_source
from pipeline.sources.catalog import Source
from pipeline.text.languages import MULTIPLE_LANGUAGES


@dataclass
class _Tally:
    """What the survey counts for one (licence statement, language) of a source."""

    seconds: float = 0.0
    files: int = 0
    unreadable: int = 0


def _item_seconds(item: SourceItem) -> float | None:
    if item.problem:
        return None
    if item.duration is not None:
        return item.duration
    return header_seconds(item.audio if item.audio else item.path)


def _tallies(source: Source) -> dict[tuple[str, str], _Tally]:
    """Hours per (licence statement, language), from the catalog or from every file."""
    if source.kind == "metadata":
        return {(source.license, lang): _Tally(hours * 3600) for lang, hours in source.hours}
    default = source.languages[0] if len(source.languages) == 1 else MULTIPLE_LANGUAGES
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    for item in read_source(source):
        tally = tallies[(source.license_for(item.key, item.license), item.language or default)]
        seconds = _item_seconds(item)
        tally.files += 1
        tally.unreadable += seconds is None
        tally.seconds += seconds or 0.0
    return tallies


def _verdict_fields(text: str, verdict: LicenseVerdict) -> dict:
    return {
        "license_text": text,
        "spdx_id": verdict.spdx_id,
        "allowed": verdict.allowed,
        "reason": verdict.reason,
        "obligations": list(verdict.obligations),
    }


def survey_source(source: Source, policy: Path | None = None) -> list[dict]:
    """The survey's rows for one source (one per licence and language), or one row with
    the error when the source cannot be read."""
    common = {
        "source": source.name,
        "kind": source.kind,
        "languages": list(source.languages),
        "labelled": source.labelled,
    }
    measured = source.kind != "metadata"
    try:
        tallies = _tallies(source)
        if measured and not tallies:  # a wrong path or extension: say so, never a silent 0 h
            raise SourceReadError(f"{source.path}: no audio files found")
    except SourceReadError as error:
        verdict = judge_license(source.license, policy)
        return [common | _verdict_fields(source.license, verdict) | {"error": str(error)}]
    return [
        common
        | _verdict_fields(text, judge_license(text, policy))
        | {
            "language": lang,
            "hours": tally.seconds / 3600,
            "files": tally.files if measured else None,
            "unreadable_files": tally.unreadable if measured else None,
        }
        for (text, lang), tally in tallies.items()
    ]


def survey_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SOURCES)


def survey_sources(sources: list[Source], policy: Path | None = None) -> pa.Table:
    """One row per source, licence and language, with the verdict and the hours; a source
    that cannot be read is one row with its error, and the survey goes on."""
    return survey_table([row for source in sources for row in survey_source(source, policy)])


def _compliant(table: pa.Table) -> list[dict]:
    return [r for r in table.to_pylist() if r["allowed"] and not r["error"]]


def compliant_hours(table: pa.Table) -> dict[str, float]:
    """Hours of allowed sources per language (`mul` for shared ones), largest first."""
    totals: dict[str, float] = defaultdict(float)
    for row in _compliant(table):
        totals[row["language"]] += row["hours"]
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def compliant_totals(table: pa.Table) -> dict[str, float]:
    """Hours of allowed sources, transcribed or not (`unknown` when the catalog is silent)."""
    totals = {"labelled": 0.0, "unlabelled": 0.0, "unknown": 0.0}
    for row in _compliant(table):
        kind = {True: "labelled", False: "unlabelled", None: "unknown"}[row["labelled"]]
        totals[kind] += row["hours"]
    return totals


def language_coverage(table: pa.Table) -> dict[str, tuple[float, float, int]]:
    """Per declared language: (hours known to be in it, hours of multilingual sources that
    include it, number of sources). Shared hours are shown, never divided by guesswork."""
    own: dict[str, float] = defaultdict(float)
    shared: dict[str, float] = defaultdict(float)
    sources: dict[str, set[str]] = defaultdict(set)
    for row in _compliant(table):
        if row["language"] == MULTIPLE_LANGUAGES:
            for lang in row["languages"]:
                shared[lang] += row["hours"]
                sources[lang].add(row["source"])
        else:
            own[row["language"]] += row["hours"]
            sources[row["language"]].add(row["source"])
    return {
        lang: (own[lang], shared[lang], len(sources[lang]))
        for lang in sorted(sources, key=lambda lang: -(own[lang] + shared[lang]))
    }


def _cell(value: object) -> str:
    return "—" if value in (None, "", []) else str(value).replace("|", "\\|")


def markdown_report(table: pa.Table) -> str:
    lines = [
        "# Source survey",
        "",
        "| source | licence | SPDX | allowed | reason | obligations | language | hours "
        "| labelled | unreadable files | error |",
        "| --- | --- | --- | --- | --- | --- | --- | ---: | --- | ---: | --- |",
    ]
    for r in table.to_pylist():
        hours = None if r["hours"] is None else f"{r['hours']:.1f}"
        labelled = None if r["labelled"] is None else ("yes" if r["labelled"] else "no")
        cells = [r["source"], r["license_text"], r["spdx_id"], "yes" if r["allowed"] else "no",
                 r["reason"], ", ".join(r["obligations"]), r["language"], hours, labelled,
                 r["unreadable_files"], r["error"]]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    totals = compliant_totals(table)
    lines += ["", "## Compliant hours", "", "| transcribed | hours |", "| --- | ---: |"]
    lines += [f"| {kind} | {hours:.1f} |" for kind, hours in totals.items() if hours]
    lines += [f"| **total** | **{sum(totals.values()):.1f}** |", ""]
    lines += [
        "## Compliant hours per language",
        "",
        "Hours of multilingual sources are not divided among their languages: each language",
        "shows the hours known to be in it and the hours of the shared sources that include it.",
        "",
        "| language | hours in this language | hours shared with others | sources |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {lang} | {own:.1f} | {shared:.1f} | {n} |"
        for lang, (own, shared, n) in language_coverage(table).items()
    ]
    return "\n".join(lines) + "\n"


def hours_chart(table: pa.Table, path: Path) -> None:
    """Compliant hours per declared language as a PNG: the hours known to be in the language,
    stacked by licence, and above them, hatched, the hours of multilingual sources that
    include it (shown whole for each of their languages, never divided)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_licence: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in _compliant(table):
        if row["language"] != MULTIPLE_LANGUAGES:
            by_licence[row["spdx_id"]][row["language"]] += row["hours"]
    coverage = language_coverage(table)
    languages = list(coverage)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.45 * len(languages) + 2), 4.5))
    bottom = [0.0] * len(languages)
    for licence, hours in sorted(by_licence.items()):
        heights = [hours.get(lang, 0.0) for lang in languages]
        axes.bar(languages, heights, bottom=bottom, label=licence)
        bottom = [b + h for b, h in zip(bottom, heights)]
    shared = [coverage[lang][1] for lang in languages]
    if any(shared):
        axes.bar(languages, shared, bottom=bottom, color="none", edgecolor="grey",
                 hatch="//", label="in multilingual sources")  # fmt: skip
    totals = [b + s for b, s in zip(bottom, shared)]
    if totals and min(totals) > 0 and max(totals) / min(totals) > 100:
        axes.set_yscale("log")  # 50 h and 50 000 h on one chart
    axes.set_ylabel("hours")
    axes.set_title("Open-licence hours per language")
    axes.legend(title="licence", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_survey(table: pa.Table, workdir: Path) -> Path:
    """Write the table, the Markdown report and the chart under `<workdir>/survey/`."""
    folder = Path(workdir) / SURVEY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_table(table, folder / SOURCES_TABLE)
    atomic_write_text(markdown_report(table), folder / "report.md")
    hours_chart(table, folder / "hours_by_language.png")
    return folder

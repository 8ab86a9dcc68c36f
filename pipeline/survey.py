"""The source survey: each source's licence verdict and hours per language, without decoding.

Local sources are measured from file headers (libsndfile, else the container's declared
duration through PyAV), so a survey of many hours takes seconds; `metadata` sources give
their hours in the catalog. One row per source and language; hours that a source gives for
several languages together are reported under `mul` rather than split by guesswork.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import soundfile

from licenses.policy import DEFAULT_POLICY, judge_license
from manifests.schemas import SOURCES
from manifests.views import SOURCES_TABLE, SURVEY_DIR
from pipeline.catalog import MULTIPLE_LANGUAGES, Source
from pipeline.runner import atomic_write_table, atomic_write_text

_LIBSNDFILE = (".wav", ".flac", ".ogg")  # headers libsndfile reads; the rest go to PyAV


def header_seconds(path: Path) -> float | None:
    """Duration from the file's header, or None when no header can be read."""
    if path.suffix.lower() in _LIBSNDFILE:
        try:
            return float(soundfile.info(str(path)).duration)
        except (RuntimeError, soundfile.LibsndfileError):
            return None
    import av

    try:
        with av.open(str(path)) as container:
            return container.duration / av.time_base if container.duration else None
    except (av.error.FFmpegError, OSError):
        return None


@dataclass(frozen=True)
class _Measured:
    hours: tuple[tuple[str, float], ...]
    files: int | None
    unreadable: int | None


def _measure(source: Source) -> _Measured:
    if source.kind == "metadata":
        return _Measured(source.hours, None, None)
    seconds = [header_seconds(p) for p in source.audio_files()]
    total = sum(s for s in seconds if s is not None) / 3600
    lang = source.languages[0] if len(source.languages) == 1 else MULTIPLE_LANGUAGES
    return _Measured(((lang, total),), len(seconds), sum(s is None for s in seconds))


def survey_sources(sources: list[Source], policy: Path | None = None) -> pa.Table:
    """One row per source and language, with the licence verdict and the hours."""
    rows = []
    for source in sources:
        verdict = judge_license(source.license, policy or DEFAULT_POLICY)
        measured = _measure(source)
        for lang, hours in measured.hours:
            rows.append(
                {
                    "source": source.name,
                    "kind": source.kind,
                    "license_text": source.license,
                    "spdx_id": verdict.spdx_id,
                    "allowed": verdict.allowed,
                    "reason": verdict.reason,
                    "obligations": list(verdict.obligations),
                    "language": lang,
                    "languages": list(source.languages),
                    "hours": hours,
                    "files": measured.files,
                    "unreadable_files": measured.unreadable,
                    "labelled": source.labelled,
                }
            )
    return pa.Table.from_pylist(rows, schema=SOURCES)


def compliant_hours(table: pa.Table) -> dict[str, float]:
    """Hours of allowed sources per language, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for row in table.to_pylist():
        if row["allowed"]:
            totals[row["language"]] += row["hours"]
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def markdown_report(table: pa.Table) -> str:
    lines = [
        "# Source survey",
        "",
        "| source | licence | SPDX | allowed | reason | obligations | language | hours "
        "| labelled |",
        "| --- | --- | --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for r in table.to_pylist():
        lines.append(
            f"| {r['source']} | {r['license_text']} | {r['spdx_id'] or '—'} | "
            f"{'yes' if r['allowed'] else 'no'} | {r['reason']} | "
            f"{', '.join(r['obligations']) or '—'} | {r['language']} | {r['hours']:.1f} | "
            f"{'—' if r['labelled'] is None else ('yes' if r['labelled'] else 'no')} |"
        )
    lines += ["", "## Compliant hours per language", "", "| language | hours |", "| --- | ---: |"]
    lines += [f"| {lang} | {hours:.1f} |" for lang, hours in compliant_hours(table).items()]
    return "\n".join(lines) + "\n"


def hours_chart(table: pa.Table, path: Path) -> None:
    """Compliant hours per language as bars stacked by licence, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_licence: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in table.to_pylist():
        if row["allowed"]:
            by_licence[row["spdx_id"]][row["language"]] += row["hours"]
    languages = list(compliant_hours(table))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.5 * len(languages) + 2), 4))
    bottom = [0.0] * len(languages)
    for licence, hours in sorted(by_licence.items()):
        heights = [hours.get(lang, 0.0) for lang in languages]
        axes.bar(languages, heights, bottom=bottom, label=licence)
        bottom = [b + h for b, h in zip(bottom, heights)]
    axes.set_ylabel("hours")
    axes.set_title("Open-licence hours per language")
    axes.legend(title="licence")
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

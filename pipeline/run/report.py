"""The curation report: where the hours went, stage by stage, what each rule dropped, and how
much of the speech the VAD heard lies inside a row (speech coverage, per source).

Everything comes from the SQL views of a workdir, so the report describes exactly what
`vaglio sql` shows. It is written as Markdown and as a self-contained HTML page, next to
PNG charts: the funnel of hours, drops per rule stacked by language, and per source the
histograms of the audio quality figures (DNSMOS OVRL, SNR), kept and dropped rows stacked.
Histograms are counted in SQL, so the report's memory does not grow with the corpus.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from manifests.views import MANIFEST_ROWS, connect
from pipeline.asr.language_gate import LANG_UNCERTAIN, LANG_UNDECLARED
from pipeline.run.runner import atomic_write_text
from pipeline.run.summary import RunSummary, summarize
from pipeline.stages.filter import DROP_REASONS

REPORT_DIR = "report"
_GATE = (LANG_UNDECLARED, LANG_UNCERTAIN)

QUALITY_BINS = {"dnsmos_ovrl": (1.0, 5.0, 0.25), "snr_db": (-30.0, 100.0, 5.0)}
"""Histogram bins of each quality figure: (lowest, highest, width); values outside land in the
first or last bin."""
_QUALITY_LABELS = {"dnsmos_ovrl": "DNSMOS OVRL (P.835, 1-5)", "snr_db": "estimated SNR (dB)"}


@dataclass(frozen=True)
class Report:
    funnel: list[tuple[str, float]]  # (step, hours) from the audio listed to the data kept
    drops: list[tuple[str, str, int, float]]  # (reason, language, segments, hours)
    examples: dict[str, list[dict]]  # reason -> a few dropped rows
    punctuation: dict[str, int]  # pnc_status -> segments
    translations: dict[tuple[str, str], int]  # (target, "kept" or reason) -> segments
    written_forms: dict[tuple[str, str], int]  # (lang, itn_status) -> segments, as in the summary
    speech_coverage: dict[str, tuple[float, float, float | None]]  # as in the summary
    llm_examples: list[tuple[str, ...]] = ()  # (stage, outcome, input, answer), a few each
    language_doubts: list[tuple[str, str, int, float]] = ()  # (doubt, lang, kept segments, h)
    # (reason, target, source text, answer): two per translation refusal reason
    translation_refusals: list[tuple[str, ...]] = ()
    # (source, figure) -> (kept, dropped) segments per bin of QUALITY_BINS[figure]
    quality_histograms: dict[tuple[str, str], tuple[list[int], list[int]]] = field(
        default_factory=dict
    )
    # (source, rated segments, OVRL 10th percentile, OVRL median, SNR 10th pct., SNR median)
    quality: list[tuple] = ()


def hours_funnel(views: duckdb.DuckDBPyConnection, summary: RunSummary) -> list[tuple[str, float]]:
    """(step, hours) from the audio listed to the data kept and translated: the report's
    funnel, which `vaglio explore` shows too."""
    gate = ", ".join(f"'{r}'" for r in _GATE)
    (usable,) = views.execute(
        "SELECT coalesce(sum(duration), 0) / 3600 FROM recordings "
        "WHERE quarantine_reason IS NULL AND duplicate_of IS NULL"
    ).fetchone()
    speech, gated = views.execute(
        "SELECT coalesce(sum(duration), 0) / 3600, coalesce(sum(duration) FILTER "
        f"(drop_reason IS NULL OR drop_reason NOT IN ({gate})), 0) / 3600 FROM {MANIFEST_ROWS}"
    ).fetchone()
    translated = views.execute(  # one row per segment: no join back to `segments` needed
        "SELECT t.lang, sum(duration) / 3600 FROM (SELECT duration, unnest(translations) AS t "
        f"FROM {MANIFEST_ROWS}) WHERE t.reason IS NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [
        ("audio listed", summary.hours_in),
        ("usable (not quarantined, not a duplicate)", usable),
        ("speech found (VAD)", speech),
        ("in a declared language (pass 1)", gated),
        ("kept by the filter", summary.hours_kept),
    ] + [(f"translated to {lang}", hours) for lang, hours in translated]


def gather(workdir: Path, examples_per_reason: int = 3) -> Report:
    """Read every figure of the report from the workdir's views; the totals that the curate
    summary already has come from `summarize`."""
    with connect(Path(workdir)) as con:
        summary = summarize(workdir, con)
        steps = hours_funnel(con, summary)
        drops = con.execute(
            "SELECT drop_reason, lang, segments, hours FROM drops ORDER BY drop_reason, lang"
        ).fetchall()
        rows = con.execute(
            "SELECT drop_reason, segment_id, lang, duration, text FROM (SELECT *, row_number() "
            "OVER (PARTITION BY drop_reason ORDER BY segment_id) AS n FROM segments "
            "WHERE drop_reason IS NOT NULL) WHERE n <= ? ORDER BY drop_reason, segment_id",
            [examples_per_reason],
        ).fetchall()
        llm_examples = con.execute(_LLM_EXAMPLES, [examples_per_reason] * 2).fetchall()
        refusals = con.execute(_TRANSLATION_REFUSALS, [REFUSAL_EXAMPLES]).fetchall()
        doubts = con.execute(
            "SELECT lang_doubt, lang, count(*), sum(duration) / 3600 FROM segments "
            "WHERE lang_doubt IS NOT NULL AND drop_reason IS NULL GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        quality = con.execute(_QUALITY).fetchall()
        histograms = _quality_histograms(con)
    examples: dict[str, list[dict]] = defaultdict(list)
    for reason, segment_id, lang, duration, text in rows:
        examples[reason].append(
            {"segment_id": segment_id, "lang": lang, "duration": duration, "text": text}
        )
    return Report(
        steps,
        drops,
        dict(examples),
        summary.punctuation,
        summary.translations,
        summary.written_forms,
        summary.speech_coverage,
        llm_examples,
        doubts,
        refusals,
        histograms,
        quality,
    )


# Per source, the spread of the audio quality figures over the rows the quality stage rated.
_QUALITY = """
SELECT source, count(*), quantile_cont(dnsmos_ovrl, 0.1), median(dnsmos_ovrl),
  quantile_cont(snr_db, 0.1), median(snr_db)
FROM segments WHERE dnsmos_ovrl IS NOT NULL OR snr_db IS NOT NULL GROUP BY source ORDER BY source
"""


def _quality_histograms(con) -> dict[tuple[str, str], tuple[list[int], list[int]]]:
    """(source, figure) -> (kept, dropped) segments per bin, counted by DuckDB."""
    histograms: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for figure, (low, high, width) in QUALITY_BINS.items():
        bins = round((high - low) / width)
        found = con.execute(
            f"SELECT source, drop_reason IS NULL, least(greatest(floor(({figure} - ?) / ?), 0), "
            f"?)::INTEGER AS bin, count(*) FROM segments WHERE {figure} IS NOT NULL "
            "GROUP BY ALL ORDER BY ALL",
            [low, width, bins - 1],
        ).fetchall()
        for source, kept, index, count in found:
            counts = histograms.setdefault((source, figure), ([0] * bins, [0] * bins))
            counts[0 if kept else 1][index] = count
    return histograms


# A few rows per LLM outcome: what the model was given and what it answered, kept or not.
_LLM_EXAMPLES = """
SELECT 'punctuation', pnc_status, text_asr, text FROM (SELECT *, row_number() OVER
  (PARTITION BY pnc_status ORDER BY segment_id) AS n FROM segments WHERE pnc_status IS NOT NULL)
WHERE n <= ?
UNION ALL
SELECT 'translation to ' || lang, coalesce(reason, 'kept'), source_text, answer FROM (SELECT *,
  row_number() OVER (PARTITION BY lang, reason ORDER BY segment_id) AS n FROM translations)
WHERE n <= ? ORDER BY 1, 2
"""


REFUSAL_EXAMPLES = 2
# What the model answered where a translation guard said no: the answer explains the reason.
_TRANSLATION_REFUSALS = """
SELECT reason, lang, source_text, answer FROM (SELECT *, row_number() OVER
  (PARTITION BY reason ORDER BY segment_id, lang) AS n FROM translations
  WHERE reason IS NOT NULL AND answer IS NOT NULL)
WHERE n <= ? ORDER BY reason, n
"""


def _order(reason: str) -> int:
    return DROP_REASONS.index(reason) if reason in DROP_REASONS else len(DROP_REASONS)


def funnel_chart(report: Report, path: Path) -> None:
    """Hours left after each step, as horizontal bars from top to bottom."""
    plt = _pyplot()
    steps = [step for step, _ in report.funnel][::-1]
    hours = [h for _, h in report.funnel][::-1]
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(steps) + 1.2))
    bars = axes.barh(steps, hours, color="#4c72b0")
    axes.bar_label(bars, labels=[f"{h:.2f} h" for h in hours], padding=3)
    axes.set_xlabel("hours")
    axes.set_title("Where the hours went")
    axes.set_xlim(0, max([*hours, 0.001]) * 1.2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def drops_chart(report: Report, path: Path) -> None:
    """Dropped hours per rule, stacked by language; every rule that dropped something."""
    plt = _pyplot()
    by_language: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for reason, lang, _, hours in report.drops:
        by_language[lang or "?"][reason] += hours
    reasons = sorted({r for r, *_ in report.drops}, key=_order)
    largest = max((sum(h for r2, _, _, h in report.drops if r2 == r) for r in reasons), default=0)
    unit, scale = ("hours", 1) if largest >= 1 else ("minutes", 60)  # readable at any size
    figure, axes = plt.subplots(figsize=(8, 0.45 * max(len(reasons), 1) + 1.4))
    left = [0.0] * len(reasons)
    for lang, hours in sorted(by_language.items()):
        widths = [hours.get(r, 0.0) * scale for r in reasons]
        axes.barh(reasons, widths, left=left, label=lang)
        left = [a + b for a, b in zip(left, widths)]
    axes.invert_yaxis()  # rules in the order they are checked, top to bottom
    axes.set_xlabel(f"{unit} dropped")
    axes.set_title("Drops per rule and language")
    if by_language:
        axes.legend(title="language", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def quality_chart(report: Report, path: Path) -> None:
    """Per source (a row each), a histogram of every quality figure, kept rows under dropped."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    sources = sorted({source for source, _ in report.quality_histograms})
    figures = list(QUALITY_BINS)
    grid, axes = plt.subplots(
        len(sources), len(figures), figsize=(9, 2.2 * len(sources) + 0.8), squeeze=False
    )
    for row, source in enumerate(sources):
        for column, figure in enumerate(figures):
            low, high, width = QUALITY_BINS[figure]
            kept, dropped = report.quality_histograms.get((source, figure), ([], []))
            lefts = [low + width * i for i in range(len(kept))]
            ax = axes[row][column]
            ax.bar(lefts, kept, width=width, align="edge", color="#4c72b0", label="kept")
            ax.bar(lefts, dropped, width=width, align="edge", bottom=kept, color="#dd8452",
                   label="dropped")  # fmt: skip
            ax.set_xlim(low, high)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of segments
            ax.set_title(f"{source}: {_QUALITY_LABELS[figure]}", fontsize="small")
            ax.set_ylabel("segments")
    axes[0][0].legend(fontsize="small")
    grid.tight_layout()
    grid.savefig(path, dpi=100)
    plt.close(grid)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the Markdown and the HTML pages."""
    tables = [
        ("Where the hours went", ["step", "hours"], [[s, f"{h:.3f}"] for s, h in report.funnel]),
        (
            "Drops per rule and language",
            ["rule", "language", "segments", "hours"],
            [
                [r, lang or "?", str(n), f"{h:.3f}"]
                for r, lang, n, h in sorted(report.drops, key=lambda d: (_order(d[0]), d[1]))
            ],
        ),
    ]
    if report.language_doubts:
        tables.append(
            (
                "Kept on weak language evidence (`lang_doubt`)",
                ["doubt", "transcribed as", "segments", "hours"],
                [[d, lang, str(n), f"{h:.3f}"] for d, lang, n, h in report.language_doubts],
            )
        )
    coverage = [
        [source, f"{speech:.3f}", f"{covered:.3f}", "–" if share is None else f"{share:.1%}"]
        for source, (speech, covered, share) in report.speech_coverage.items()
    ]
    tables.append(
        ("Speech coverage", ["source", "VAD speech h", "inside rows h", "coverage"], coverage)
    )
    if report.quality:
        tables.append(
            (
                "Audio quality per source",
                ["source", "rated segments", "OVRL p10", "OVRL median", "SNR p10", "SNR median"],
                [[source, str(n), *map(_figure, spread)] for source, n, *spread in report.quality],
            )
        )
    if report.punctuation:
        rows = [[status, str(n)] for status, n in report.punctuation.items()]
        tables.append(("Punctuation", ["status", "segments"], rows))
    if report.written_forms:
        rows = [[lang, status, str(n)] for (lang, status), n in report.written_forms.items()]
        tables.append(("Written forms (NeMo ITN)", ["language", "itn_status", "segments"], rows))
    if report.translations:
        rows = [[lang, outcome, str(n)] for (lang, outcome), n in report.translations.items()]
        tables.append(("Translations", ["target", "outcome", "segments"], rows))
    if report.llm_examples:
        rows = [[c or "" for c in example] for example in report.llm_examples]
        tables.append(
            ("What the LLM answered", ["stage", "outcome", "input", "row text / answer"], rows)
        )
    if report.translation_refusals:
        rows = [[c or "" for c in refusal] for refusal in report.translation_refusals]
        tables.append(
            (
                "Translations refused: what the model answered",
                ["reason", "target", "source", "answer"],
                rows,
            )
        )
    for reason in sorted(report.examples, key=_order):
        rows = [
            [e["segment_id"], e["lang"] or "?", f"{e['duration']:.1f}", e["text"] or ""]
            for e in report.examples[reason]
        ]
        tables.append((f"Dropped as `{reason}`", ["segment", "lang", "s", "text"], rows))
    return tables


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _charts(report: Report) -> list[str]:
    """The PNG files of the report, in the order they are shown."""
    return ["funnel.png", "drops.png"] + (["quality.png"] if report.quality_histograms else [])


def _markdown(report: Report) -> str:
    lines = ["# Curation report", ""]
    for chart in _charts(report):
        lines += [f"![{chart.removesuffix('.png')}]({chart})", ""]
    for title, header, rows in _tables(report):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |"]
        lines += ["| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _html(report: Report) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Curation report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>",
        "<h1>Curation report</h1>" + "".join(f"<img src='{c}'>" for c in _charts(report)),
    ]
    for title, header, rows in _tables(report):
        parts.append(f"<h2>{html.escape(title.replace('`', ''))}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in header] + ["</tr>"]
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def write_report(workdir: Path, examples_per_reason: int = 3) -> Path:
    """Write `<workdir>/report/` (report.md, report.html, funnel.png, drops.png, and
    quality.png where rows were rated)."""
    report = gather(workdir, examples_per_reason)
    folder = Path(workdir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    funnel_chart(report, folder / "funnel.png")
    drops_chart(report, folder / "drops.png")
    if report.quality_histograms:
        quality_chart(report, folder / "quality.png")
    else:  # not one row rated now: an older run's chart would mislead
        (folder / "quality.png").unlink(missing_ok=True)
    atomic_write_text(_markdown(report), folder / "report.md")
    atomic_write_text(_html(report), folder / "report.html")
    return folder

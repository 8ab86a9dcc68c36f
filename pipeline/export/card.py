"""The dataset card (README.md): YAML the hub understands, and a body a person reads.

The YAML lists the hub's licence ids (`other` with `license_name`/`license_link` where the hub
has none), languages, task categories, the size category and one `configs` entry per config,
so `load_dataset(repo, config)` finds the files. The body credits every source (CC BY's
attribution is satisfied here), states the changes made, shows the filter funnel and the
models that wrote the labels, and says how to load the data.

Every value that comes from data (a source's name or attribution, a licence, a reason) passes
through `markdown_text` on its way into the body, so none can end a table row, start a heading,
link somewhere or carry HTML: the card shows it as the text it is.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote

import yaml

from licenses.policy import OBLIGATIONS
from manifests.views import connect
from pipeline.export.hub_folder import DATA_DIR, ConfigSummary
from pipeline.export.rows import KeptRows
from pipeline.run.summary import summarize

README_FILE = "README.md"
LICENSES_FILE = "LICENSES.md"
_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                    (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                    (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))  # fmt: skip


@cache
def _hub_licenses() -> dict:
    return yaml.safe_load(Path(__file__).with_name("hub_licenses.yaml").read_text())


def hub_license_id(spdx_id: str) -> str | None:
    """The hub's id for an SPDX licence, or None where the hub has none (`other`)."""
    return _hub_licenses()["hub_ids"].get(spdx_id)


def license_link(spdx_id: str) -> str:
    links = _hub_licenses()["links"]
    if spdx_id in links:
        return links[spdx_id]
    return f"https://spdx.org/licenses/{spdx_id}.html"


def size_category(rows: int) -> str:
    return next((name for bound, name in _SIZE_CATEGORIES if rows < bound), "n>1B")


@dataclass(frozen=True)
class SourceRow:
    source: str
    license: str
    attribution: str
    obligations: tuple[str, ...]
    lang: str
    rows: int
    hours: float


def _published_sources(kept: KeptRows) -> list[SourceRow]:
    refused = {(r.source, r.license) for r in kept.refusals}
    with connect(kept.workdir) as con:
        found = con.execute(
            "SELECT source, license, coalesce(attribution, ''), lang, count(*), "
            "sum(duration) / 3600 FROM segments WHERE drop_reason IS NULL "
            "GROUP BY ALL ORDER BY source, license, lang"
        ).fetchall()
    return [
        SourceRow(s, lic, a, kept.verdict(lic).obligations, lang, n, h)
        for s, lic, a, lang, n, h in found
        if (s, lic) not in refused and kept.verdict(lic).allowed
    ]


def _models(workdir: Path) -> list[tuple[str, str]]:
    with connect(workdir) as con:
        found = con.execute(
            "SELECT DISTINCT e.key, e.value FROM (SELECT unnest(map_entries(versions)) AS e "
            "FROM segments_all WHERE drop_reason IS NULL) ORDER BY 1, 2"
        ).fetchall()
    return [(stage, version) for stage, version in found]


def card_metadata(configs: list[ConfigSummary], sources: list[SourceRow], name: str) -> dict:
    spdx_ids = sorted({s.license for s in sources})
    hub_ids = sorted({hub_license_id(i) or "other" for i in spdx_ids})
    metadata: dict = {
        "pretty_name": name,
        "license": hub_ids if len(hub_ids) > 1 else hub_ids[0],
    }
    unmapped = [i for i in spdx_ids if hub_license_id(i) is None]
    if unmapped:
        metadata["license_name"] = unmapped[0].lower() if len(unmapped) == 1 else "several"
        metadata["license_link"] = LICENSES_FILE
    languages = sorted({c.source_lang for c in configs} | {c.target_lang for c in configs
                                                          if c.target_lang})  # fmt: skip
    metadata["language"] = languages
    tasks = ["automatic-speech-recognition"]
    if any(c.kind == "translation" for c in configs):
        tasks.append("translation")
    metadata["task_categories"] = tasks
    metadata["multilinguality"] = "multilingual" if len(languages) > 1 else "monolingual"
    rows = sum(sum(c.rows.values()) for c in configs)
    metadata["size_categories"] = [size_category(rows)]
    metadata["tags"] = ["audio", "speech", "vaglio"]
    largest = max(configs, key=lambda c: (sum(c.rows.values()), c.name))
    metadata["configs"] = [
        {
            "config_name": c.name,
            **({"default": True} if c is largest else {}),
            "data_files": [
                {"split": split, "path": f"{DATA_DIR}/{c.name}/{split}-*.parquet"}
                for split in sorted(c.files)
            ],
        }
        for c in configs
    ]
    return metadata


def _by_source(sources: list[SourceRow]) -> list[tuple[SourceRow, list[str], float]]:
    """One line per source and licence, with its languages and hours."""
    grouped: dict[tuple[str, str], list[SourceRow]] = defaultdict(list)
    for s in sources:
        grouped[s.source, s.license].append(s)
    return [(rows[0], sorted({r.lang for r in rows}), sum(r.hours for r in rows))
            for _, rows in sorted(grouped.items())]  # fmt: skip


class Markdown(str):
    """Text that is Markdown already: built here, from values passed through `markdown_text`."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")


def markdown_text(value: object) -> Markdown:
    """`value` as inline Markdown text that renders as itself: on one line, HTML shown as text,
    and the characters that make links, emphasis, code or table cells escaped."""
    if isinstance(value, Markdown):
        return value
    one_line = " ".join(_CONTROL.sub(" ", str(value)).split())
    return Markdown(_MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(one_line, quote=False)))


def _link(label: object, url: str) -> Markdown:
    return Markdown(f"[{markdown_text(label)}]({quote(url, safe=':/#?&=%+@,;~')})")


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_text(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f}"


def _body(kept: KeptRows, configs: list[ConfigSummary], sources: list[SourceRow],
          name: str, repo_id: str) -> str:  # fmt: skip
    summary = summarize(kept.workdir)
    parts = [f"# {name}", "",
             "Speech curated by vaglio from openly licensed sources: "
             "segmented with Silero VAD, transcribed twice with Whisper, filtered for "
             "hallucinations, and published with the licence, attribution and obligations of "
             "every row (`license`, `attribution`, `obligations` columns).", ""]  # fmt: skip
    parts += ["## Configs", "", _table(
        ["config", "task", "language", "licences", "rows per split", "hours"],
        [[c.name, c.kind, c.source_lang + (f" → {c.target_lang}" if c.target_lang else ""),
          ", ".join(sorted(c.licenses)) + (" (share-alike)" if c.share_alike else ""),
          ", ".join(f"{s}: {n}" for s, n in sorted(c.rows.items())),
          _hours(sum(c.seconds.values()))] for c in configs]), ""]  # fmt: skip
    by_lang: dict[tuple[str, str], float] = defaultdict(float)
    for s in sources:
        by_lang[s.lang, s.license] += s.hours
    parts += [
        "## Hours per language and licence",
        "",
        _table(
            ["language", "licence", "hours"],
            [[lang, lic, f"{h:.3f}"] for (lang, lic), h in sorted(by_lang.items())],
        ),
        "",
    ]
    parts += [
        "## Sources, licences and attribution",
        "",
        "Every source, credited as its licence asks. Changes made to all of them: the "
        "audio was decoded to 16 kHz mono FLAC and cut into utterances; transcripts "
        "were written by the models below.",
        "",
        _table(
            ["source", "licence", "attribution", "obligations", "languages", "hours"],
            [
                [
                    s.source,
                    _link(s.license, license_link(s.license)),
                    s.attribution or "—",
                    ", ".join(s.obligations) or "none",
                    ", ".join(langs),
                    f"{h:.3f}",
                ]
                for (s, langs, h) in _by_source(sources)
            ],
        ),
        "",
    ]
    obligations = sorted({o for s in sources for o in s.obligations},
                         key=list(OBLIGATIONS).index)  # fmt: skip
    if obligations:
        parts += ["What the licences ask of you:", ""]
        parts += [f"- **{o}**: {OBLIGATIONS[o]}" for o in obligations] + [""]
    if kept.refusals:
        parts += [
            "## Left out at publish time",
            "",
            _table(
                ["source", "licence", "rows", "reason"],
                [[r.source, r.license, r.rows, r.reason] for r in kept.refusals],
            ),
            "",
        ]
    parts += [
        "## Filter funnel",
        "",
        _table(
            ["stage", "recordings / segments", "hours"],
            [
                ["recordings in", summary.recordings, f"{summary.hours_in:.3f}"],
                ["segments transcribed", summary.segments, ""],
                ["segments kept", summary.segments_kept, f"{summary.hours_kept:.3f}"],
            ],
        ),
        "",
        _table(
            ["drop reason", "segments", "hours"],
            [[r, n, f"{h:.3f}"] for r, (n, h) in summary.dropped.items()],
        ),
        "",
    ]
    if summary.quarantined:
        quarantined = ", ".join(f"{reason}: {n}" for reason, n in summary.quarantined.items())
        parts += [f"Recordings quarantined: {markdown_text(quarantined)}", ""]
    parts += [
        "## Models and versions",
        "",
        _table(["stage", "version[:backend:model]"], [list(m) for m in _models(kept.workdir)]),
        "",
    ]
    first = configs[0].name
    parts += ["## How to load", "", "```python", "from datasets import load_dataset, Audio", "",
              f'ds = load_dataset("{repo_id}", "{first}")',
              'ds[0]["audio"]  # decoded by torchcodec; to read the FLAC bytes yourself:',
              'ds = ds.cast_column("audio", Audio(decode=False))', "```", "",
              "Splits are by recording (no recording is in two splits), the same as vaglio's "
              "training job.", ""]  # fmt: skip
    return "\n".join(parts)


def write_card(kept: KeptRows, configs: list[ConfigSummary], out: Path, repo_id: str) -> list[str]:
    """Write README.md and LICENSES.md into `out`; returns their names."""
    from huggingface_hub import DatasetCard, DatasetCardData

    sources = _published_sources(kept)
    name = repo_id.split("/")[-1]
    metadata = card_metadata(configs, sources, name)
    data = DatasetCardData(**metadata)
    text = f"---\n{data.to_yaml()}\n---\n\n{_body(kept, configs, sources, name, repo_id)}"
    DatasetCard(text)  # parses what the hub will parse
    licenses = sorted({s.license for s in sources})
    lines = ["# Licences", ""]
    for spdx_id in licenses:
        under = sorted({s.source for s in sources if s.license == spdx_id})
        lines += [f"- {_link(spdx_id, license_link(spdx_id))}: {markdown_text(', '.join(under))}"]
    (Path(out) / LICENSES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (Path(out) / README_FILE).write_text(text, encoding="utf-8")
    return [README_FILE, LICENSES_FILE]

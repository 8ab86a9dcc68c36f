"""Build a metadata-only catalog from MOSEL's public list of open-licence speech sources.

MOSEL (arXiv 2410.01036) publishes, per source, its licence, hours, languages and whether it
is transcribed. The list is kept as published, typos included, so the builder checks every
language code and corrects only the typos it knows, saying so; an unknown code stops the
build rather than putting hours under a language nobody declared.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.data import MOSEL_SOURCES
from pipeline.sources.catalog import CatalogError
from pipeline.text.languages import is_language_code

# Codes MOSEL's table gets wrong, with the code meant and how we know.
KNOWN_TYPOS = {
    "fu": ("fi", "VoxPopuli's transcribed languages include Finnish, and no language is 'fu'"),
}
# MOSEL's own release pseudo-labels audio that the list already counts (LibriLight and
# the untranscribed VoxPopuli): listing it again would count those hours twice.
PSEUDO_LABEL_RELEASE = re.compile(r"^MOSEL\b")
_COLUMNS = ("source", "license", "hours", "languages", "labelled")
PUBLISHED_LIST = MOSEL_SOURCES
"""MOSEL's source list as published with the paper (arXiv 2410.01036), typos included."""


@dataclass(frozen=True)
class MoselCatalog:
    sources: list[dict]  # catalog entries, ready for `yaml.safe_dump({"sources": …})`
    notes: list[str]  # every correction and omission, for the user to read


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _languages(written: str, where: str, notes: list[str]) -> list[str]:
    codes = []
    for code in (c.strip() for c in written.split(",")):
        if code in KNOWN_TYPOS:
            fixed, why = KNOWN_TYPOS[code]
            notes.append(f"{where}: language {code!r} read as {fixed!r} ({why})")
            code = fixed
        if not is_language_code(code):
            raise CatalogError(f"{where}: {code!r} is not an ISO 639 language code")
        if code not in codes:
            codes.append(code)
    return codes


def mosel_catalog(tsv: Path = PUBLISHED_LIST) -> MoselCatalog:
    """Metadata entries for every source in the TSV, named uniquely, hours as published."""
    with Path(tsv).open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        absent = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise CatalogError(f"{tsv}: no column(s) {', '.join(absent)}")
        rows = list(reader)
    names = [_slug(r["source"]) for r in rows]
    sources, notes = [], []
    for line, (row, name) in enumerate(zip(rows, names), 2):
        where = f"{tsv}: line {line} ({row['source']})"
        if PSEUDO_LABEL_RELEASE.match(row["source"]):
            notes.append(f"{where}: left out, its labels are for audio already listed")
            continue
        labelled = row["labelled"].strip().lower() == "yes"
        if names.count(name) > 1:  # one corpus listed as transcribed and untranscribed parts
            name = f"{name}-{'labelled' if labelled else 'unlabelled'}"
        try:
            hours = float(row["hours"])
        except ValueError:
            raise CatalogError(f"{where}: hours {row['hours']!r} is not a number") from None
        sources.append(
            {
                "name": name,
                "kind": "metadata",
                "license": row["license"].strip(),
                "attribution": row["source"].strip(),
                "languages": _languages(row["languages"], where, notes),
                "hours": hours,
                "labelled": labelled,
            }
        )
    return MoselCatalog(sources, notes)

"""`kind: commonvoice` — one language folder of a Common Voice release: `<split>.tsv` files
(`path`, `sentence`, `locale`, …) and the `clips/` folder.

By default the `validated` split is read (train, dev and test are subsets of it); `splits:`
chooses others. A clip listed by several splits is read once. Durations come from
`clip_durations.tsv` when the release has it.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline.catalog import Source
from pipeline.languages import language_code
from pipeline.sources.base import SourceItem, SourceReadError, resolve_inside

_REQUIRED = ("path", "sentence")


def _table(path: Path, required: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        absent = [c for c in required if c not in (reader.fieldnames or ())]
        if absent:
            raise SourceReadError(f"{path}: no column(s) {', '.join(absent)}")
        yield from reader


def _durations(folder: Path) -> dict[str, float]:
    path = folder / "clip_durations.tsv"
    if not path.is_file():
        return {}
    durations = {}
    for row in _table(path):
        try:
            durations[row["clip"]] = float(row["duration[ms]"]) / 1000
        except (KeyError, TypeError, ValueError):
            continue
    return durations


def read_commonvoice(source: Source) -> Iterator[SourceItem]:
    folder = source.path
    splits = source.options.get("splits") or ["validated"]
    missing = [s for s in splits if not (folder / f"{s}.tsv").is_file()]
    if missing:
        raise SourceReadError(f"{folder}: no {', '.join(f'{s}.tsv' for s in missing)}")
    durations = _durations(folder)
    seen: set[str] = set()
    for split in splits:
        for number, row in enumerate(_table(folder / f"{split}.tsv", _REQUIRED), 2):
            clip = row["path"] or ""
            if clip in seen:
                continue
            seen.add(clip)
            yield _item(folder, clip, row, durations, f"{split}.tsv line {number}")


def _item(folder: Path, clip: str, row: dict, durations: dict, where: str) -> SourceItem:
    if not clip:
        return SourceItem(where, problem=f"bad manifest row: {where} has no clip path")
    path, problem = resolve_inside(folder / "clips", clip)
    locale = row.get("locale") or ""
    return SourceItem(
        key=f"clips/{clip}",
        path=path,
        duration=durations.get(clip),
        language=language_code(locale) if locale else None,
        text=(row.get("sentence") or "").strip() or None,
        problem=problem,
    )

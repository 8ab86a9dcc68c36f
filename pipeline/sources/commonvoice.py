"""`kind: commonvoice` — one language folder of a Common Voice release: `<split>.tsv` files
(`path`, `sentence`, `locale`, …) and the `clips/` folder.

`path` may also be a whole release, whose language folders are each read (the locale
column, else the folder's name, gives the language). By default the `validated` split is
read (train, dev and test are subsets of it); `splits:` chooses others. A clip listed by
several splits is read once. Durations come from `clip_durations.tsv` when the release has it.

The tables are tab-separated without quoting (sentences hold quote marks freely), so a tab or
a line break inside a sentence shows as a row with more or fewer fields than the header: such
a row is quarantined with the reason, never read with its sentence cut short.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.base import (
    SourceItem,
    SourceReadError,
    resolve_inside,
    seconds,
    stated_language,
)
from pipeline.sources.catalog import Source

_REQUIRED = ("path", "sentence")


def _table(path: Path, required: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            absent = [c for c in required if c not in (reader.fieldnames or ())]
            if absent:
                raise SourceReadError(f"{path}: no column(s) {', '.join(absent)}")
            yield from reader
    except (OSError, UnicodeDecodeError) as error:
        raise SourceReadError(f"{path}: cannot read the table: {error}") from None


def _misshapen(row: dict) -> str | None:
    """Why a row's fields do not line up with the header (a tab or line break in a field)."""
    if None in row:
        return f"has {len(row[None])} field(s) more than the header (a tab inside a field?)"
    if None in row.values():
        return "has fewer fields than the header (a line break inside a field?)"
    return None


def _durations(folder: Path) -> dict[str, float | str]:
    """Each clip's duration in seconds, or the reason the table's figure cannot be used."""
    path = folder / "clip_durations.tsv"
    if not path.is_file():
        return {}
    durations: dict[str, float | str] = {}
    for number, row in enumerate(_table(path), 2):
        clip, written = row.get("clip"), row.get("duration[ms]")
        if not clip or written is None or _misshapen(row):
            continue
        try:
            value: float | str = float(written) / 1000
        except ValueError:
            value = written
        duration, problem = seconds(value, "duration", positive=True)
        durations[clip] = duration if problem is None else f"{problem} ({path.name} line {number})"
    return durations


def _language_folders(root: Path, splits: list[str]) -> list[Path]:
    """The folder itself when it is one language's, else its language subfolders (a whole
    release: `cv-corpus-17.0/{it,de,…}`)."""
    if any((root / f"{s}.tsv").is_file() for s in splits):
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / f"{splits[0]}.tsv").is_file())
    if not found:
        raise SourceReadError(f"{root}: no {splits[0]}.tsv here or in a language subfolder")
    return found


def read_commonvoice(source: Source) -> Iterator[SourceItem]:
    splits = source.options.get("splits") or ["validated"]
    folders = _language_folders(source.path, splits)
    for folder in folders:
        missing = [s for s in splits if not (folder / f"{s}.tsv").is_file()]
        if missing:
            raise SourceReadError(f"{folder}: no {', '.join(f'{s}.tsv' for s in missing)}")
        prefix = f"{folder.name}/" if folder != source.path else ""
        durations = _durations(folder)
        seen: set[str] = set()
        for split in splits:
            for number, row in enumerate(_table(folder / f"{split}.tsv", _REQUIRED), 2):
                where = f"{prefix}{split}.tsv line {number}"
                if misshapen := _misshapen(row):
                    yield SourceItem(where, problem=f"bad manifest row: {where} {misshapen}")
                    continue
                clip = row["path"] or ""
                if clip in seen:
                    continue
                seen.add(clip)
                yield _item(folder, prefix, clip, row, durations, where)


def _item(
    folder: Path, prefix: str, clip: str, row: dict, durations: dict, where: str
) -> SourceItem:
    if not clip:
        return SourceItem(where, problem=f"bad manifest row: {where} has no clip path")
    path, problem = resolve_inside(folder / "clips", clip)
    language, bad_locale = stated_language(row.get("locale") or (folder.name if prefix else None))
    duration = durations.get(clip)
    bad_duration = duration if isinstance(duration, str) else None
    return SourceItem(
        key=f"{prefix}clips/{clip}",
        path=path,
        duration=None if bad_duration else duration,
        language=language,
        text=(row.get("sentence") or "").strip() or None,
        problem=problem or bad_locale or bad_duration,
    )

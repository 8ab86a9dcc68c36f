"""`kind: nemo` — a NeMo JSONL manifest: `audio_filepath`, `duration`, `text`, optional
`offset` and `lang` (and, where files differ, `license`).

A row with an `offset` is a window of its file; rows without one are whole files. Relative
paths resolve against the manifest's folder (or the catalog's `root`), and must stay in it;
a file's key is its path relative to that root, however the row writes it. A line that is not
a usable row (not JSON, nested past the parser's depth, a number of thousands of digits) is
quarantined with the reason, and the next line is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from pipeline.sources.base import (
    SourceItem,
    SourceReadError,
    key_under,
    resolve_inside,
    seconds,
    stated_language,
    stated_license,
)
from pipeline.sources.catalog import Source


def read_nemo(source: Source) -> Iterator[SourceItem]:
    root = source.options.get("root", source.path.parent)
    try:
        with source.path.open(encoding="utf-8") as manifest:
            for number, line in enumerate(manifest, 1):
                if line.strip():
                    yield _item(line, number, root)
    except (OSError, UnicodeDecodeError) as error:
        raise SourceReadError(f"{source.path}: cannot read the manifest: {error}") from None


def _item(line: str, number: int, root) -> SourceItem:
    where = f"line-{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        problem = f"bad manifest row: line {number} is not JSON ({error.msg})"
        return SourceItem(where, problem=problem)
    except (ValueError, RecursionError) as error:  # 5000 digits; 200 000 brackets deep
        problem = f"bad manifest row: line {number} cannot be read: {str(error)[:80]}"
        return SourceItem(where, problem=problem)
    if not isinstance(row, dict) or not isinstance(row.get("audio_filepath"), str):
        return SourceItem(where, problem=f"bad manifest row: line {number} has no audio_filepath")
    path, problem = resolve_inside(root, row["audio_filepath"])
    offset, bad_offset = seconds(row.get("offset"), "offset")
    duration, bad_duration = seconds(row.get("duration"), "duration", positive=True)
    key = key_under(root, row["audio_filepath"])
    if bad_offset or bad_duration:  # a key of its own, or it would read as "listed twice"
        key = f"{key}@{where}"
    elif offset is not None:  # several windows of one file need keys of their own
        key = f"{key}@{offset:.3f}" + ("" if duration is None else f"+{duration:.3f}")
    language, bad_lang = stated_language(row.get("lang"))
    license_text, bad_license = stated_license(row.get("license"))
    text = row.get("text")
    return SourceItem(
        key=key,
        path=path,
        offset=offset,
        duration=duration,
        language=language,
        text=text if isinstance(text, str) else None,
        license=license_text,
        problem=problem or bad_offset or bad_duration or bad_lang or bad_license,
    )

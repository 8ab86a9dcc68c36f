"""`kind: lhotse` — a Lhotse recordings manifest (JSONL, optionally gzipped) and, optionally,
its supervisions manifest; or a folder of them as Lhotse recipes write them
(`<corpus>_recordings_<split>.jsonl.gz` beside `<corpus>_supervisions_<split>.jsonl.gz`).

Each recording becomes one item; its supervisions, in time order, give the existing
transcript and, by majority, the language. Only audio stored as files can be read; URL,
command and in-memory sources are quarantined with the reason.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from pipeline.sources.base import SourceItem, SourceReadError, resolve_inside, seconds
from pipeline.sources.catalog import Source
from pipeline.text.languages import language_code


def _rows(path: Path) -> Iterator[tuple[int, dict | None]]:
    """(line number, object or None when the line is not a JSON object)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        row = None
                    yield number, row if isinstance(row, dict) else None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise SourceReadError(f"{path}: cannot read the manifest: {error}") from None


def _supervisions(path: Path | None) -> dict[str, list[dict]]:
    by_recording: dict[str, list[dict]] = defaultdict(list)
    if path is None:
        return by_recording
    for number, row in _rows(path):
        if row is None or not isinstance(row.get("recording_id"), str):
            raise SourceReadError(f"{path}: line {number} is not a supervision with recording_id")
        by_recording[row["recording_id"]].append(row)
    return by_recording


def _manifests(source: Source) -> list[tuple[str, Path, Path | None]]:
    """(split, recordings, supervisions or None): the catalog's pair, or every
    `*recordings*.jsonl[.gz]` of a folder with its `*supervisions*` twin, as recipes write."""
    if source.path.is_file():
        return [("", source.path, source.options.get("supervisions"))]
    pairs = []
    for recordings in sorted(source.path.glob("*recordings*.jsonl*")):
        twin = recordings.with_name(recordings.name.replace("recordings", "supervisions"))
        stem = recordings.name.split(".")[0]
        split = re.sub(r"[_-]*recordings[_-]*", "_", stem).strip("_") or "all"
        pairs.append((split, recordings, twin if twin.is_file() else None))
    if not pairs:
        raise SourceReadError(f"{source.path}: no *recordings*.jsonl or .jsonl.gz manifest")
    return pairs


def read_lhotse(source: Source) -> Iterator[SourceItem]:
    folder = source.path if source.path.is_dir() else source.path.parent
    root = source.options.get("root", folder)
    pairs = _manifests(source)
    for split, recordings, supervisions_path in pairs:
        supervisions = _supervisions(supervisions_path)
        prefix = f"{split}/" if len(pairs) > 1 else ""  # ids need not be unique across splits
        for number, row in _rows(recordings):
            if row is None or not isinstance(row.get("id"), str):
                problem = f"bad manifest row: {recordings.name} line {number} has no recording id"
                yield SourceItem(f"{prefix}line-{number}", problem=problem)
                continue
            item = _item(row, supervisions.get(row["id"], []), root)
            yield replace(item, key=prefix + item.key)


def _item(recording: dict, supervisions: list[dict], root: Path) -> SourceItem:
    files = [s for s in recording.get("sources") or [] if isinstance(s, dict)]
    path, problem = None, "bad manifest row: no audio source"
    if files and files[0].get("type") == "file" and isinstance(files[0].get("source"), str):
        path, problem = resolve_inside(root, files[0]["source"])
    elif files:
        problem = f"not a file: audio source type {files[0].get('type')!r}"
    duration, bad_duration = seconds(recording.get("duration"), "duration")
    ordered = sorted(supervisions, key=lambda s: s.get("start") or 0.0)
    texts = [s["text"].strip() for s in ordered if isinstance(s.get("text"), str)]
    languages = Counter(
        code
        for s in ordered
        if isinstance(s.get("language"), str) and (code := language_code(s["language"]))
    )
    custom = recording.get("custom") if isinstance(recording.get("custom"), dict) else {}
    return SourceItem(
        key=recording["id"],
        path=path,
        duration=duration,
        language=languages.most_common(1)[0][0] if languages else None,
        text=" ".join(t for t in texts if t) or None,
        license=custom.get("license") if isinstance(custom.get("license"), str) else None,
        problem=problem or bad_duration,
    )

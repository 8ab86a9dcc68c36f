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
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from pipeline.sources.base import (
    SourceItem,
    SourceReadError,
    resolve_inside,
    seconds,
    stated_language,
    stated_license,
)
from pipeline.sources.catalog import Source


def _rows(path: Path) -> Iterator[tuple[int, dict | None]]:
    """(line number, object or None when the line is not a JSON object)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except (ValueError, RecursionError):  # not JSON, 5000 digits, too deep
                        row = None
                    yield number, row if isinstance(row, dict) else None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as error:  # a corrupt stream
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
    duration, bad_duration = seconds(recording.get("duration"), "duration", positive=True)
    bad_duration = bad_duration or _samples_problem(recording, duration)
    bad_supervision = _supervision_problem(supervisions, duration)
    ordered = sorted(supervisions, key=lambda s: seconds(s.get("start"), "start")[0] or 0.0)
    texts = [s["text"].strip() for s in ordered if isinstance(s.get("text"), str)]
    stated = [stated_language(s.get("language")) for s in ordered]
    bad_language = next((why for _, why in stated if why), None)
    languages = Counter(code for code, _ in stated if code)
    custom = recording.get("custom") if isinstance(recording.get("custom"), dict) else {}
    license_text, bad_license = stated_license(custom.get("license"))
    return SourceItem(
        key=recording["id"],
        path=path,
        duration=duration,
        language=languages.most_common(1)[0][0] if languages else None,
        text=" ".join(t for t in texts if t) or None,
        license=license_text,
        problem=problem or bad_duration or bad_supervision or bad_language or bad_license,
    )


def _samples_problem(recording: dict, duration: float | None) -> str | None:
    """Why `num_samples / sampling_rate` contradicts the declared duration, if it does."""
    samples, rate = recording.get("num_samples"), recording.get("sampling_rate")
    if duration is None or not all(isinstance(n, int) and 0 < n < 2**63 for n in (samples, rate)):
        return None
    if abs(samples / rate - duration) > 0.5:
        return (
            f"bad manifest row: duration {duration:.2f} s, but num_samples / sampling_rate "
            f"gives {samples / rate:.2f} s"
        )
    return None


def _supervision_problem(supervisions: list[dict], duration: float | None) -> str | None:
    """Why a supervision's times are unusable (not numbers, or outside the recording)."""
    for supervision in supervisions:
        name = supervision.get("id", "?")
        start, bad = seconds(supervision.get("start", 0.0), f"supervision {name} start")
        length, bad_length = seconds(
            supervision.get("duration", 0.0), f"supervision {name} duration"
        )
        if bad or bad_length:
            return bad or bad_length
        if duration is not None and start + length > duration + 0.5:
            return (
                f"bad manifest row: supervision {name} ends at {start + length:.2f} s, "
                f"after the recording's {duration:.2f} s"
            )
    return None

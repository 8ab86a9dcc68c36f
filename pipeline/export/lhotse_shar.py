"""Lhotse Shar: `cuts.NNNNNN.jsonl.gz` beside `recording.NNNNNN.tar`, per split folder.

One cut per kept segment, with `id = segment_id`, written by Lhotse's own `SharWriter` from an
in-memory recording of the segment's FLAC. The supervision carries the text, language and the
word timings (`alignment["word"]`, seconds from the start of the cut, where any); the
cut's custom fields carry Canary's prompt keys (`source_lang`, `target_lang`, `pnc`,
`taskname`), the kept translations (`translations`: language -> text) and the provenance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.export.readback import Entry, mono
from pipeline.export.rows import ExportError, Sample
from pipeline.extras import MissingExtraError


def _require_lhotse() -> None:
    try:
        import lhotse  # noqa: F401
    except ImportError:
        raise MissingExtraError("the Lhotse Shar export", "lhotse", "export") from None


def to_cut(sample: Sample):
    from lhotse import Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    recording = Recording.from_bytes(sample.flac, recording_id=sample.segment_id)
    cut = recording.to_cut()
    words = [AlignmentItem(word, start, end - start) for word, start, end in sample.words]
    cut.supervisions = [SupervisionSegment(
        id=sample.segment_id, recording_id=sample.segment_id, start=0.0,
        duration=recording.duration, text=sample.text, language=sample.lang,
        alignment={"word": words} if words else None)]  # fmt: skip
    cut.custom = {
        "source_lang": sample.lang, "target_lang": sample.lang, "pnc": sample.pnc,
        "taskname": "asr", "translations": dict(sample.translations),
        "source_recording_id": sample.recording_id, "source": sample.source,
        "license": sample.license, "attribution": sample.attribution,
    }  # fmt: skip
    return cut


def export_lhotse_shar(
    samples: Iterable[Sample],
    out: Path,
    shard_size: int = 1000,
    progress: Callable[[Sample], None] = lambda s: None,
) -> dict[str, int]:
    """Write each split's Shar under `out/<split>/`; returns cuts per split."""
    _require_lhotse()
    from lhotse.shar import SharWriter

    writers: dict[str, SharWriter] = {}
    counts: dict[str, int] = {}
    try:
        for sample in samples:
            if sample.split not in writers:
                folder = Path(out) / sample.split
                folder.mkdir(parents=True, exist_ok=True)
                writers[sample.split] = SharWriter(
                    str(folder), fields={"recording": "flac"}, shard_size=shard_size
                ).__enter__()
            writers[sample.split].write(to_cut(sample))
            counts[sample.split] = counts.get(sample.split, 0) + 1
            progress(sample)
    finally:
        for writer in writers.values():
            writer.close()
    return counts


def check_lhotse_shar(folder: Path) -> list[Entry]:
    """Every cut of one split, read by `CutSet.from_shar`, audio decoded."""
    _require_lhotse()
    from lhotse import CutSet

    folder = Path(folder)
    if not list(folder.glob("cuts.*.jsonl*")):
        raise ExportError(f"{folder}: no Lhotse Shar cuts (cuts.NNNNNN.jsonl.gz)")
    entries = []
    try:
        for cut in CutSet.from_shar(in_dir=str(folder)):
            (supervision,) = cut.supervisions
            words = tuple(
                (w.symbol, w.start, w.end) for w in (supervision.alignment or {}).get("word", [])
            )
            entries.append(Entry(cut.id, cut.custom["taskname"], supervision.text,
                                 supervision.language, cut.custom["source_lang"],
                                 mono(cut.load_audio()), words))  # fmt: skip
    except (AssertionError, KeyError, RuntimeError, ValueError) as error:
        raise ExportError(f"{folder}: Lhotse cannot read the Shar: {error}") from None
    return entries

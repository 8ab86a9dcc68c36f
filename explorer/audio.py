"""A segment's own audio, found from its id alone, and a waveform to draw it.

A kept segment's FLAC is read as stored in its dataset file (the manifest's `shard` column
names it); a dropped one has no dataset copy and is cut from its standardised recording, as
the shard stage cuts. No path ever comes from a request: the files are the ones the workdir's
manifests name, and a name that would leave the workdir is refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from manifests.views import current_shards
from pipeline.audio.decode import SAMPLE_RATE, from_flac, to_flac

WAVEFORM_WIDTH = 800
WAVEFORM_HEIGHT = 80


class AudioMissing(LookupError):
    """The workdir holds no audio for this segment (its files were moved or removed)."""


def _inside(workdir: Path, relative: str) -> Path:
    path = (workdir / relative).resolve()
    if not path.is_relative_to(workdir.resolve()):
        raise AudioMissing(f"{relative}: outside the workdir")
    return path


def _first(dataset: ds.Dataset, column: str, key: str, value: str) -> bytes | None:
    try:
        table = dataset.to_table(columns=[column], filter=pc.field(key) == value)
    except pa.ArrowException as error:  # a file without the column, or not Parquet
        raise AudioMissing(f"{value}: {str(error).splitlines()[0]}") from None
    return table.column(column)[0].as_py() if len(table) else None


def dataset_flac(workdir: Path, shard: str, segment_id: str) -> bytes:
    """The FLAC bytes stored for a kept segment in the dataset file `shard`."""
    dataset = ds.dataset(_inside(workdir, shard), format="parquet")
    audio = _first(dataset, "audio", "segment_id", segment_id)
    if not audio or not audio.get("bytes"):
        raise AudioMissing(f"{segment_id}: not in {shard}")
    return audio["bytes"]


@lru_cache(maxsize=4)
def _recording(workdir: Path, recording_id: str) -> np.ndarray:
    """A standardised recording's samples; the few last ones stay decoded, since a curator
    listens to one recording's segments one after another."""
    files = [workdir / "standardise" / f"{s}.parquet" for s in current_shards(workdir)]
    present = [str(f) for f in files if f.exists()]
    if not present:
        raise AudioMissing(f"{recording_id}: the workdir has no standardised audio")
    flac = _first(ds.dataset(present, format="parquet"), "audio", "recording_id", recording_id)
    if not flac:
        raise AudioMissing(f"{recording_id}: no standardised audio")
    return from_flac(flac)


def samples(workdir: Path, segment: dict) -> np.ndarray:
    """The segment's samples: decoded from its dataset copy, or cut from its recording."""
    if segment["shard"]:
        return from_flac(dataset_flac(workdir, segment["shard"], segment["segment_id"]))
    start = round(segment["offset"] * SAMPLE_RATE)
    end = round((segment["offset"] + segment["duration"]) * SAMPLE_RATE)
    return _recording(workdir, segment["recording_id"])[start:end]


def segment_flac(workdir: Path, segment: dict) -> bytes:
    """The segment's audio as FLAC: the stored bytes when there are some, else a cut."""
    if segment["shard"]:
        return dataset_flac(workdir, segment["shard"], segment["segment_id"])
    return to_flac(samples(workdir, segment))


def waveform_svg_path(audio: np.ndarray) -> str:
    """An SVG path of the waveform's envelope (peak per pixel column), in a box of
    WAVEFORM_WIDTH × WAVEFORM_HEIGHT; drawn inline, it costs no request and no image library."""
    if len(audio) == 0:
        return ""
    columns = np.array_split(np.abs(audio), min(WAVEFORM_WIDTH, len(audio)))
    peaks = np.array([c.max() for c in columns])
    peaks = peaks / max(float(peaks.max()), 1e-6)
    step = WAVEFORM_WIDTH / len(peaks)
    middle = WAVEFORM_HEIGHT / 2
    top = [f"{i * step:.1f},{middle - p * middle:.1f}" for i, p in enumerate(peaks)]
    bottom = [f"{i * step:.1f},{middle + p * middle:.1f}" for i, p in enumerate(peaks)][::-1]
    return "M" + " L".join(top + bottom) + " Z"

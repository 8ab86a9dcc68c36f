"""Cut each segment's samples out of its standardised recording, decoding each recording once."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from pipeline.audio.decode import SAMPLE_RATE, from_flac
from pipeline.stage import ShardContext


def segment_samples(context: ShardContext, segments: pa.Table) -> list[np.ndarray]:
    """Float32 samples of every row of `segments` (`recording_id`, `offset`, `duration`)."""
    needed = set(segments["recording_id"].to_pylist())
    recordings = context.read("standardise", ["recording_id", "audio"])
    audio = {
        rid: from_flac(data)
        for rid, data in zip(
            recordings["recording_id"].to_pylist(), recordings["audio"].to_pylist()
        )
        if rid in needed
    }
    return [
        _cut(audio[rid], offset, duration)
        for rid, offset, duration in zip(
            segments["recording_id"].to_pylist(),
            segments["offset"].to_pylist(),
            segments["duration"].to_pylist(),
        )
    ]


def streamed_segment_samples(context: ShardContext, segments: pa.Table) -> Iterator[np.ndarray]:
    """The samples of every row of `segments`, one at a time, holding one decoded recording:
    memory stays flat however long the shard. A recording is decoded once if its rows are
    consecutive (as every stage writes them), again if it comes back later."""
    recordings = context.read("standardise", ["recording_id", "audio"])
    flac = dict(zip(recordings["recording_id"].to_pylist(), recordings["audio"].to_pylist()))
    current, audio = None, np.zeros(0, np.float32)
    for rid, offset, duration in zip(
        segments["recording_id"].to_pylist(),
        segments["offset"].to_pylist(),
        segments["duration"].to_pylist(),
    ):
        if rid != current:
            current, audio = rid, from_flac(flac[rid])
        yield _cut(audio, offset, duration)


def _cut(audio: np.ndarray, offset: float, duration: float) -> np.ndarray:
    return audio[round(offset * SAMPLE_RATE) : round((offset + duration) * SAMPLE_RATE)]

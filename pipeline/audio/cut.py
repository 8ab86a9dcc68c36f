"""Cut each segment's samples out of its standardised recording, decoding each recording once."""

from __future__ import annotations

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
        audio[rid][round(offset * SAMPLE_RATE) : round((offset + duration) * SAMPLE_RATE)]
        for rid, offset, duration in zip(
            segments["recording_id"].to_pylist(),
            segments["offset"].to_pylist(),
            segments["duration"].to_pylist(),
        )
    ]

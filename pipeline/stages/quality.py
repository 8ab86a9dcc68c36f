"""Rate the audio of every utterance: DNSMOS P.835 (SIG, BAK, OVRL) and an SNR estimate.

The stage runs between pass 2 and the filter, so that the filter can drop rows below
`min_dnsmos_ovrl` or `min_snr_db` (both off by default) with reasons of their own, and every
row, kept or dropped, carries its figures into SQL. Rows of recordings that failed the language
gate are not rated (they are dropped whatever they sound like), nor rows shorter than
`min_duration_s` (too short to measure): their figures are null, and no quality rule judges them.

Recordings are decoded one at a time and their utterances rated as they come, DNSMOS windows
batched across utterances, so memory holds one recording and one batch however long the shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.schemas import QUALITY_FIELDS, SCORED, with_versions
from pipeline.audio.cut import streamed_segment_samples
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.quality.dnsmos import MODEL_TAG, RATINGS, Dnsmos, dnsmos_model_path
from pipeline.quality.snr import FRAME, MIN_FRAMES, snr_db
from pipeline.stage import ShardContext, Stage
from pipeline.validation import Count, Seconds

SHORTEST_S = MIN_FRAMES * FRAME / SAMPLE_RATE


@dataclass(frozen=True)
class QualityConfig:
    dnsmos: bool = True  # False: the SNR alone (DNSMOS costs ~0.4 core-seconds a window)
    # DNSMOS windows (9.01 s) per utterance, each centred on an equal part of it; 5 covers
    # every second of a 40 s utterance, 1 rates the middle 9 s of a long one.
    max_windows: Count = 1
    batch_size: Count = 1  # windows per model call; each needs ~150 MB, held between calls
    threads: Count = 2  # onnxruntime threads for the shard being rated
    min_duration_s: Seconds = 0.5  # shorter rows are not rated (null figures)

    def __post_init__(self) -> None:
        if self.min_duration_s < SHORTEST_S:
            raise ValueError(
                f"min_duration_s ({self.min_duration_s}) is below {SHORTEST_S} s, the least "
                "audio an SNR can be estimated from"
            )


class Quality(Stage):
    name = "quality"
    version = "1"
    inputs = ("pass2", "standardise")
    # One shard at a time on every thread, as the ASR passes: shards differ widely in rows (on
    # the demo corpus 19, 4, 3 and 0), so side by side one would soon run alone on one core.
    max_parallel_shards = 1

    def __init__(self, config: QualityConfig):
        super().__init__(config)
        if config.dnsmos:
            dnsmos_model_path()  # a missing or corrupt model is told before the first shard

    @property
    def version_tag(self) -> str:
        return f"{self.version}:{MODEL_TAG if self.config.dnsmos else 'snr'}"

    @cached_property
    def dnsmos(self) -> Dnsmos:
        return Dnsmos(self.config.threads, self.config.batch_size, self.config.max_windows)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("pass2")
        rated = pc.and_(
            pc.is_null(table["gate_reason"]),
            pc.greater_equal(table["duration"], self.config.min_duration_s),
        )
        rows = np.flatnonzero(rated.to_numpy(zero_copy_only=False))
        segments = streamed_segment_samples(context, table.take(rows))
        ratings = np.full((len(rows), len(RATINGS)), np.nan)
        if self.config.dnsmos:
            snrs: list[float] = []
            for row, found in enumerate(self.dnsmos.rate(_measured(segments, snrs))):
                ratings[row] = found
        else:
            snrs = [snr_db(samples) for samples in segments]
        figures = [*ratings.T, np.array(snrs)]
        added = [_scattered(values, rows, len(table)) for values in figures]
        scored = pa.table([*table.columns, *added], schema=SCORED)
        return with_versions(scored, self.name, self.version_tag)


def _measured(segments: Iterator[np.ndarray], snrs: list[float]) -> Iterator[np.ndarray]:
    """The segments as they come, each one's SNR appended to `snrs` on the way (one pass over
    the audio feeds both measures)."""
    for samples in segments:
        snrs.append(snr_db(samples))
        yield samples


def _scattered(values: np.ndarray, rows: np.ndarray, length: int) -> pa.Array:
    """`values` at positions `rows` of a float32 column of `length`, null elsewhere (and where
    a value is NaN: not measured)."""
    column = np.full(length, np.nan, dtype=np.float32)
    column[rows] = values
    return pa.array(column, QUALITY_FIELDS[0].type, from_pandas=True)

"""Speakers across the corpus: one table that names each recording's speakers' cluster and
each recording's split group, derived after the `speakers` stage has run on every shard.

The stage sees one shard at a time; here the speakers of every shard (a normed mean voice per
recording and speaker, written beside each shard) are linked by similarity
(`clustering.single_linkage`) and written to `<workdir>/speaker_clusters.parquet`, as
`duplicates.parquet` is written after `standardise`. A cluster is named by its first member,
`<recording_id>#<speaker>`; recordings that share a cluster, directly or through others, form
a split group named by its first recording. Only those voices are held in memory (1 KB per
recording and speaker), and the similarity pass is quadratic in their number.

A corpus whose recordings all join one group (one narrator, or a cast that recurs in every
recording) cannot have speaker-disjoint splits: kept whole, the group would put every row in
one split. Such a corpus is split by recording instead, and the run summary says its splits
share a speaker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifests.schemas import SPEAKER_CLUSTERS, VOICES
from manifests.views import SPEAKER_CLUSTERS_FILE, VOICES_KIND
from pipeline.query.splits import DEFAULT_RATIOS, split_of
from pipeline.run.runner import atomic_write_table
from pipeline.speakers.clustering import components, single_linkage


def clusters_path(workdir: Path) -> Path:
    return Path(workdir) / SPEAKER_CLUSTERS_FILE


def voices_path(workdir: Path, stage: str, shard_id: str) -> Path:
    """The per-speaker voices a `speakers` shard writes beside its output."""
    return Path(workdir) / stage / f"{shard_id}{VOICES_KIND}.parquet"


def link_speakers(workdir: Path, voice_files: list[Path], threshold: float) -> pa.Table:
    """Cluster every recording's speakers across `voice_files`; write and return the table."""
    files = [f for f in voice_files if f.exists()]
    columns = ["recording_id", "speaker", "embedding"]
    voices = pa.concat_tables(
        [pq.read_table(f, columns=columns) for f in files] or [VOICES.empty_table().select(columns)]
    ).sort_by([("recording_id", "ascending"), ("speaker", "ascending")])
    recordings = voices["recording_id"].to_pylist()
    speakers = voices["speaker"].to_pylist()
    vectors = voices["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    width = len(vectors) // len(voices) if len(voices) else 0  # no voice: nothing was kept
    component = single_linkage(vectors.reshape(len(voices), width), threshold)
    names = [f"{recordings[first]}#{speakers[first]}" for first in component]
    group = _split_groups(recordings, component)
    table = pa.table(
        {
            "recording_id": recordings,
            "speaker": voices["speaker"],
            "speaker_cluster": names,
            "split_group": group,
            "split": [split_of(r, DEFAULT_RATIOS, g) for r, g in zip(recordings, group)],
        },
        schema=SPEAKER_CLUSTERS,
    )
    atomic_write_table(table, clusters_path(workdir))
    return table


def _split_groups(recordings: list[str], component: np.ndarray) -> list[str]:
    """Each row's split group: the first recording of the recordings joined by clusters, or
    the row's own recording where every recording joins one group."""
    ids = sorted(set(recordings))
    index = {r: i for i, r in enumerate(ids)}
    rows = np.array([index[r] for r in recordings], dtype=np.int64)
    linked = components(len(ids), rows, rows[component])
    if len(ids) > 1 and not linked.any():  # all in the group of the first: split by recording
        return list(recordings)
    return [ids[linked[i]] for i in rows]


def read_split_groups(workdir: Path, recording_ids: list[str]) -> dict[str, str]:
    """recording_id -> split_group of those of `recording_ids` that have speakers, from the
    last curation (the file is sorted by recording, so only its row groups that may hold
    them are read)."""
    path = clusters_path(workdir)
    if not path.exists() or not recording_ids:
        return {}
    table = pq.read_table(
        path,
        columns=["recording_id", "split_group"],
        filters=pc.field("recording_id").isin(recording_ids),
    )
    return dict(zip(table["recording_id"].to_pylist(), table["split_group"].to_pylist()))

"""Who speaks: speakers counted per recording, one speaker never in two splits, and resume.

A small corpus is curated for real (Silero VAD, Whisper base, Resemblyzer's voice encoder): one
recording of real human speech (the five `cards_*` clips of `tests/data/real_speech`, CMU
Sphinx test data, BSD-2-Clause, one session of one speaker) and one of three espeak-ng voices
taking turns. The splits are checked on the session's curated demo corpus, whose English and
Italian recordings share espeak's default voice.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
import yaml
from typer.testing import CliRunner

from manifests import schemas
from pipeline.cli import app
from pipeline.config import CurateConfig
from pipeline.demo_corpus import ENGLISH, compose, speak, write_audio
from pipeline.export.rows import KeptRows
from pipeline.query.splits import DEFAULT_RATIOS
from pipeline.query.sql import run_query
from pipeline.run.curate import ThreadExecutor, curate
from pipeline.run.runner import atomic_write_table
from pipeline.run.summary import summarize
from pipeline.speakers.corpus import clusters_path, link_speakers
from pipeline.stages.speakers import SpeakersConfig
from training.data import RowFilter, iter_rows, shard_paths

DATA = Path(__file__).parent / "data" / "real_speech"
SOURCE = "voices"
REAL = f"{SOURCE}/cards.wav"
TURNS = f"{SOURCE}/turns.wav"
VOICES = ("en", "en+steph", "en+whisperf")  # told apart by the encoder with room to spare
MARGIN = 0.02  # how far from the threshold each decision must be, either way


def _build(folder: Path) -> Path:
    rng = random.Random(5)
    (folder / SOURCE).mkdir(parents=True)
    cards = [soundfile.read(p, dtype="float32")[0] for p in sorted(DATA.glob("cards_*.flac"))]
    pauses = [rng.uniform(0.4, 1.2) for _ in cards[1:]]
    write_audio(folder / REAL, compose(cards, pauses, edge_s=0.5))
    turns = [0.5 * speak(text, VOICES[i % 3]) for i, text in enumerate(ENGLISH[:6])]
    pauses = [rng.uniform(0.4, 1.2) for _ in turns[1:]]
    write_audio(folder / TURNS, compose(turns, pauses, edge_s=0.5))
    source = {"name": SOURCE, "kind": "local", "path": SOURCE, "license": "BSD-2-Clause",
              "attribution": "CMU Sphinx test data; espeak-ng", "languages": ["en"]}  # fmt: skip
    catalog = folder / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    return catalog


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> tuple[Path, Path]:
    """(catalog, workdir) of the two recordings, curated once (one shard each)."""
    folder = tmp_path_factory.mktemp("speakers")
    catalog = _build(folder)
    config = dataclasses.replace(CurateConfig(), files_per_shard=1)
    curate(catalog, folder / "work", config, ThreadExecutor(1))
    return catalog, folder / "work"


def _margins(workdir: Path) -> dict[str, dict]:
    return {
        row["recording_id"]: row
        for path in (workdir / "speakers").glob("*.voices.parquet")
        for row in pq.read_table(path).to_pylist()
    }


@pytest.mark.numerics
def test_one_real_speaker_and_three_espeak_voices_are_counted_with_room_to_spare(voices):
    _, workdir = voices
    rows = run_query(workdir, "SELECT DISTINCT recording_id, n_speakers FROM segments")
    assert {r["recording_id"]: r["n_speakers"] for r in rows.to_pylist()} == {REAL: 1, TURNS: 3}
    threshold = SpeakersConfig().same_speaker
    margins = _margins(workdir)
    assert margins[REAL]["loosest_merge"] >= threshold + MARGIN  # one voice, never near a split
    assert margins[TURNS]["loosest_merge"] >= threshold + MARGIN
    assert margins[TURNS]["closest_apart"] <= threshold - MARGIN  # three voices, clearly apart
    rows = run_query(
        workdir,
        "SELECT speaker, speaker_share, speaker_cluster FROM segments_all "
        f"WHERE recording_id = '{TURNS}' AND drop_reason IS NULL",
    ).to_pylist()
    assert {r["speaker"] for r in rows} <= {0, 1, 2}
    assert all(0 < r["speaker_share"] <= 1 for r in rows)
    clusters = run_query(workdir, "SELECT DISTINCT speaker_cluster FROM speakers").to_pylist()
    assert len(clusters) == 4  # the real voice is none of espeak's


def _voices_file(path: Path, recordings: dict[str, list[int]], centres: np.ndarray) -> Path:
    """A voices file as the stage writes it: recording -> the voice (a row of `centres`) of
    each of its speakers."""
    rows = [
        {"recording_id": r, "speaker": s, "embedding": centres[v].tolist()}
        for r, voices in recordings.items()
        for s, v in enumerate(voices)
    ]
    atomic_write_table(pa.Table.from_pylist(rows, schemas.VOICES), path)
    return path


def test_recordings_that_share_a_voice_share_a_split_unless_every_recording_does(tmp_path):
    centres = np.linalg.qr(np.random.default_rng(1).standard_normal((256, 4)))[0].T  # apart
    recordings = {f"r{i:02d}": [i % 3] for i in range(12)} | {"host": [0, 1], "solo": [3]}
    path = _voices_file(tmp_path / "a.voices.parquet", recordings, centres)
    table = link_speakers(tmp_path, [path], threshold=0.8).to_pylist()
    group = {r["recording_id"]: r["split_group"] for r in table}
    split = {r["recording_id"]: r["split"] for r in table}
    voice_0_or_1 = [r for r, voices in recordings.items() if {0, 1} & set(voices)]
    assert {group[r] for r in voice_0_or_1} == {"host"}  # linked through the host's two voices
    assert len({split[r] for r in voice_0_or_1}) == 1
    assert group["r02"] == group["r05"] != "host" and group["solo"] == "solo"

    one_voice = {f"r{i:02d}": [0] for i in range(12)}
    path = _voices_file(tmp_path / "b.voices.parquet", one_voice, centres)
    table = link_speakers(tmp_path, [path], threshold=0.8).to_pylist()
    assert len({r["speaker_cluster"] for r in table}) == 1
    assert {r["split_group"] for r in table} == set(one_voice)  # by recording: no split empty
    assert len({r["split"] for r in table}) > 1


def test_every_exit_agrees_on_the_splits_and_the_summary_says_when_they_share_a_voice(
    curated, tmp_path
):
    """The demo's recordings share espeak's default voice: one voice group, split by
    recording; the dataset files, the training reader and SQL give every row the same split."""
    workdir, _ = curated
    clusters = run_query(
        workdir, "SELECT recording_id, speaker_cluster, split_group, split FROM speakers"
    ).to_pylist()
    assert clusters, "the demo corpus has kept speech"
    sql = {r["recording_id"]: r["split"] for r in clusters}
    assert {r["recording_id"] for r in clusters} == {r["split_group"] for r in clusters}
    assert len(set(sql.values())) > 1  # not one split for the whole corpus

    exported = {}
    for table in KeptRows(workdir).tables(columns=["recording_id", "split_group"]):
        exported |= dict(zip(table["recording_id"].to_pylist(), table["split"].to_pylist()))
    trained = {}
    for split in DEFAULT_RATIOS:
        keep = RowFilter(split, dict(DEFAULT_RATIOS))
        trained |= {
            r["recording_id"]: split for r in iter_rows(shard_paths(workdir), keep, audio=False)
        }
    assert exported == trained == {r: sql[r] for r in exported}

    summary = summarize(workdir)
    shared = {r["speaker_cluster"] for r in clusters}
    assert summary.shared_speakers == len(shared)
    assert sum(recordings for recordings, _ in summary.splits.values()) == len(sql)

    result = CliRunner().invoke(
        app,
        ["sql", "SELECT split, count(DISTINCT speaker_cluster) AS speakers FROM speakers "
         "GROUP BY split", "--workdir", str(workdir), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    counted = json.loads(result.stdout)  # `vaglio sql --format json`: one array
    assert {r["split"]: r["speakers"] for r in counted} == {
        s: n for s, (_, n) in summary.splits.items()
    }


def _ran(result, stage: str) -> int:
    return sum(not o.skipped for o in result.outcomes if o.stage == stage)


def test_a_rerun_embeds_nothing_again_and_a_new_threshold_redoes_only_what_it_changes(voices):
    catalog, workdir = voices
    config = dataclasses.replace(CurateConfig(), files_per_shard=1)
    again = curate(catalog, workdir, config, ThreadExecutor(1))
    assert all(o.skipped for o in again.outcomes)

    before = pq.read_table(clusters_path(workdir))
    joined = dataclasses.replace(
        config, speakers=dataclasses.replace(config.speakers, same_speaker_across=0.05)
    )
    relinked = curate(catalog, workdir, joined, ThreadExecutor(1))
    assert _ran(relinked, "speakers") == 0  # the voices stand; only their links change
    after = pq.read_table(clusters_path(workdir))
    assert [len(set(t["speaker_cluster"].to_pylist())) for t in (before, after)] == [4, 1]
    assert after["split_group"].equals(before["split_group"])  # one voice group: by recording
    assert _ran(relinked, "shard") == 0  # so no row's group changed

    voices_file = next((workdir / "speakers").glob("*.voices.parquet"))
    voices_file.unlink()
    repaired = curate(catalog, workdir, config, ThreadExecutor(1))
    assert _ran(repaired, "speakers") == 1
    assert pq.read_table(clusters_path(workdir)).equals(before)


def test_voices_are_linked_a_block_at_a_time_into_the_same_clusters(monkeypatch):
    """Across a corpus the similarities are computed a block of rows at a time; chains that
    cross blocks still join (a~b, b~c: one cluster even when a and c are not alike)."""
    from pipeline.speakers import clustering

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((6, 256))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    voices = np.repeat(centres, 40, axis=0) + 0.02 * rng.standard_normal((240, 256))
    chain = np.stack([centres[0] * (1 - t) + centres[1] * t for t in (0.3, 0.5, 0.7)])
    vectors = np.concatenate([voices, chain])[rng.permutation(243)]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    whole = clustering.single_linkage(vectors, 0.8)
    monkeypatch.setattr(clustering, "_BLOCK_CELLS", 7 * len(vectors))
    assert np.array_equal(clustering.single_linkage(vectors, 0.8), whole)
    assert len(set(whole.tolist())) == 5  # six voices, two of them chained into one
    grouped = clustering.average_linkage(vectors, 0.7)
    assert grouped.count == 6  # average linkage, within a recording, does not follow chains
    assert grouped.loosest_merge >= 0.7 > grouped.closest_apart

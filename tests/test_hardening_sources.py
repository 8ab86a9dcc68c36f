"""Hostile sources: one bad item is quarantined with its true reason and the run goes on.

Non-finite audio, file names that are not UTF-8, links that loop, dangle or leave the folder,
manifest numbers that are NaN, negative, absurd or contradicted by the file, unknown
languages, and a catalog with no sources at all.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import yaml
from typer.testing import CliRunner

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.cli import app
from pipeline.demo_corpus import write_audio
from pipeline.query.sql import run_query
from pipeline.run.plan import plan_sources
from pipeline.run.runner import StageRunner
from pipeline.sources import read_source
from pipeline.sources.catalog import load_catalog
from pipeline.stages.standardise import Standardise, StandardiseConfig

BAD_NAME = os.fsdecode(b"caf\xe9-latin1.wav")  # a Latin-1 name: its byte 0xE9 is not UTF-8


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


def catalog_of(folder: Path, *sources: dict) -> Path:
    defaults = {"attribution": "test", "languages": ["en"], "license": "CC0-1.0"}
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"sources": [defaults | s for s in sources]}))
    return path


def recordings(catalog: Path, workdir: Path) -> dict[str, str | None]:
    """Plan and standardise every shard, as `vaglio curate` does first; reason by recording."""
    plans = plan_sources(load_catalog(catalog), workdir, files_per_shard=4)
    runner = StageRunner(workdir)
    for shard_id in (s for plan in plans for s in plan.shard_ids):
        runner.run(Standardise(StandardiseConfig()), shard_id)
    (workdir / "shards.json").write_text(json.dumps([s for p in plans for s in p.shard_ids]))
    rows = run_query(workdir, "SELECT recording_id, quarantine_reason FROM recordings")
    return dict(zip(*rows.to_pydict().values()))


def reasons(catalog: Path) -> dict[str, str | None]:
    (source,) = load_catalog(catalog)
    return {item.key: item.problem for item in read_source(source)}


@pytest.fixture
def hostile_folder(tmp_path) -> Path:
    folder = tmp_path / "audio"
    folder.mkdir()
    write_audio(folder / "good.wav", tone(1.0))
    broken = tone(1.0)
    broken[100], broken[200] = np.nan, np.inf
    soundfile.write(folder / "nan.wav", broken, SAMPLE_RATE, subtype="FLOAT")
    write_audio(folder / "latin1.wav", tone(1.0))
    os.rename(folder / "latin1.wav", folder / BAD_NAME)  # surrogate-escaped: the bytes as they are
    write_audio(tmp_path / "secret.wav", tone(1.0))
    (folder / "loop.wav").symlink_to("loop.wav")
    (folder / "dangling.wav").symlink_to("gone.wav")
    (folder / "escape.wav").symlink_to(tmp_path / "secret.wav")
    (folder / "parent").symlink_to(tmp_path)
    return folder


def test_hostile_files_in_a_folder_are_quarantined_and_the_rest_curated(hostile_folder, tmp_path):
    catalog = catalog_of(tmp_path, {"name": "mixed", "kind": "local", "path": "audio"})

    found = recordings(catalog, tmp_path / "work")

    assert found == {
        "mixed/caf\\xe9-latin1.wav": "file name is not UTF-8: caf\\xe9-latin1.wav",
        "mixed/dangling.wav": "dangling link: dangling.wav",
        "mixed/escape.wav": f"link leaves the source folder: escape.wav -> {tmp_path}/secret.wav",
        "mixed/good.wav": None,
        "mixed/loop.wav": "symlink loop: loop.wav",
        "mixed/nan.wav": "not finite: 2 samples are NaN or infinite",
        "mixed/parent": f"link leaves the source folder: parent -> {tmp_path}",
    }


def test_survey_of_hostile_files_counts_them_unreadable(hostile_folder, tmp_path):
    catalog = catalog_of(tmp_path, {"name": "mixed", "kind": "local", "path": "audio"})

    result = CliRunner().invoke(app, ["survey", str(catalog), "-w", str(tmp_path / "work")])

    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(tmp_path / "work" / "survey" / "sources.parquet").to_pylist()
    assert (row["files"], row["unreadable_files"]) == (7, 5)  # nan.wav's header is fine
    assert row["hours"] * 3600 == pytest.approx(2.0, abs=0.01)


def test_manifest_numbers_are_checked_for_what_they_are(tmp_path):
    write_audio(tmp_path / "three.wav", tone(3.0))
    rows = [
        '{"audio_filepath": "three.wav", "offset": NaN, "duration": 1.0}',
        '{"audio_filepath": "three.wav", "offset": 0.5, "duration": NaN}',
        '{"audio_filepath": "three.wav", "offset": -1.0, "duration": 1.0}',
        '{"audio_filepath": "three.wav", "offset": 0.0, "duration": Infinity}',
        '{"audio_filepath": "three.wav", "duration": 999.0}',
        '{"audio_filepath": "three.wav", "offset": 1.0, "duration": 1.0, "lang": "xx"}',
        '{"audio_filepath": "three.wav", "offset": 2.0, "duration": 1.0, "lang": "it"}',
    ]
    (tmp_path / "m.json").write_text("\n".join(rows) + "\n")
    catalog = catalog_of(tmp_path, {"name": "n", "kind": "nemo", "path": "m.json"})

    assert reasons(catalog) == {
        "three.wav@line-1": "bad manifest row: offset is not a number of seconds: nan",
        "three.wav@line-2": "bad manifest row: duration is not a number of seconds: nan",
        "three.wav@line-3": "bad manifest row: offset out of range: -1.0 s",
        "three.wav@line-4": "bad manifest row: duration is not a number of seconds: inf",
        "three.wav": "declared duration 999.00 s, but the file holds 3.00 s",
        "three.wav@1.000+1.000": "bad manifest row: unknown language 'xx'",
        "three.wav@2.000+1.000": None,
    }


def test_common_voice_durations_and_locales_are_checked(tmp_path):
    folder = tmp_path / "cv"
    (folder / "clips").mkdir(parents=True)
    clips = {"ok.wav": 3000, "negative.wav": -3000, "absurd.wav": 33_333_000, "xx.wav": 3000}
    for clip in clips:
        write_audio(folder / "clips" / clip, tone(3.0))
    with (folder / "validated.tsv").open("w", newline="") as f:
        table = csv.writer(f, delimiter="\t")
        table.writerow(["path", "sentence", "locale"])
        table.writerows([clip, "a sentence", "xx" if clip == "xx.wav" else "en"] for clip in clips)
    with (folder / "clip_durations.tsv").open("w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows([["clip", "duration[ms]"], *clips.items()])
    catalog = catalog_of(tmp_path, {"name": "cv", "kind": "commonvoice", "path": "cv"})

    assert reasons(catalog) == {
        "clips/ok.wav": None,
        "clips/negative.wav": "bad manifest row: duration out of range: -3.0 s "
        "(clip_durations.tsv line 3)",
        "clips/absurd.wav": "declared duration 33333.00 s, but the file holds 3.00 s",
        "clips/xx.wav": "bad manifest row: unknown language 'xx'",
    }
    result = CliRunner().invoke(app, ["survey", str(catalog), "-w", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(tmp_path / "work" / "survey" / "sources.parquet").to_pylist()
    assert row["hours"] * 3600 == pytest.approx(3.0)  # not 27.78 h


def test_a_lhotse_recording_longer_on_paper_than_its_file_is_quarantined(tmp_path):
    write_audio(tmp_path / "three.wav", tone(3.0))
    source = [{"type": "file", "channels": [0], "source": "three.wav"}]
    recordings_rows = [
        {"id": "inflated", "sources": source, "sampling_rate": 16000, "duration": 999.0},
        {"id": "honest", "sources": source, "sampling_rate": 16000, "duration": 3.0},
    ]
    supervisions_rows = [
        {"id": "s1", "recording_id": "inflated", "start": 500.0, "duration": 2.0, "text": "x"},
        {"id": "s2", "recording_id": "honest", "start": 500.0, "duration": 2.0, "text": "y"},
    ]
    for name, rows in (("recordings", recordings_rows), ("supervisions", supervisions_rows)):
        (tmp_path / f"c_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lhotse = {"name": "l", "kind": "lhotse", "path": "c_recordings.jsonl",
              "supervisions": "c_supervisions.jsonl"}  # fmt: skip
    catalog = catalog_of(tmp_path, lhotse)

    assert reasons(catalog) == {
        "inflated": "declared duration 999.00 s, but the file holds 3.00 s",
        "honest": "bad manifest row: supervision s2 ends at 502.00 s, after the recording's 3.00 s",
    }


@pytest.mark.parametrize("command", ["curate", "survey"])
def test_a_catalog_without_sources_says_there_is_nothing_to_do(tmp_path, command):
    (tmp_path / "catalog.yaml").write_text("sources: []\n")

    workdir = tmp_path / "w"
    result = CliRunner().invoke(app, [command, str(tmp_path / "catalog.yaml"), "-w", str(workdir)])

    assert result.exit_code == 2
    assert "'sources:' is empty: nothing to curate or survey" in result.output
    assert not workdir.exists()

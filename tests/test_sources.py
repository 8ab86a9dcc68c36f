"""Every source kind, from fixtures built here in each format: what a reader yields, what the
run makes of it, and how broken manifests end up (quarantined rows or a reported source,
never a crashed run)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
import yaml
from typer.testing import CliRunner

from manifests.views import SHARD_LIST
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.cli import app
from pipeline.demo_corpus import write_audio
from pipeline.query.sql import run_query
from pipeline.run.plan import plan_sources
from pipeline.run.runner import StageRunner
from pipeline.sources import SourceReadError, read_source
from pipeline.sources.catalog import load_catalog
from pipeline.sources.survey import survey_sources
from pipeline.stages.standardise import Standardise, StandardiseConfig


def steps(seconds: float) -> np.ndarray:
    """A tone whose pitch changes every second, so a window's content shows where it was cut."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 100 * np.floor(t)) * t)).astype(np.float32)


def write_catalog(folder: Path, *sources: dict) -> Path:
    path = folder / "catalog.yaml"
    defaults = {"attribution": "test", "languages": ["en"], "license": "CC BY 4.0"}
    entries = [{k: v for k, v in (defaults | s).items() if v is not None} for s in sources]
    path.write_text(yaml.safe_dump({"sources": entries}))
    return path


def jsonl(path: Path, rows: list, compress: bool = False) -> Path:
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def standardised(catalog: Path, workdir: Path) -> tuple[list, dict[str, dict]]:
    """Plan and standardise a catalog; (plans, recordings by id)."""
    plans = plan_sources(load_catalog(catalog), workdir, files_per_shard=3)
    runner, stage = StageRunner(workdir), Standardise(StandardiseConfig())
    shard_ids = [s for plan in plans for s in plan.shard_ids]
    for shard_id in shard_ids:
        runner.run(stage, shard_id)
    (workdir / SHARD_LIST).write_text(json.dumps(shard_ids))
    rows = run_query(workdir, "SELECT * FROM recordings").to_pylist()
    return plans, {r["recording_id"]: r for r in rows}


@pytest.fixture
def nemo_source(tmp_path) -> Path:
    folder = tmp_path / "nemo"
    (folder / "audio").mkdir(parents=True)
    write_audio(folder / "audio" / "long.wav", steps(6.0))
    write_audio(folder / "audio" / "short.wav", steps(1.5))
    write_audio(tmp_path / "outside.wav", steps(1.0))
    return jsonl(
        folder / "manifest.json",
        [
            {"audio_filepath": "audio/short.wav", "duration": 1.5, "text": "hello there"},
            {"audio_filepath": "audio/long.wav", "offset": 1.0, "duration": 2.0, "text": "a b"},
            {
                "audio_filepath": "audio/long.wav",
                "offset": 4.0,
                "duration": 1.5,
                "lang": "it",
                "text": "ciao",
            },
            {"audio_filepath": "audio/long.wav", "duration": 6.0, "license": "CC BY-NC 4.0"},
            {"audio_filepath": "../outside.wav", "duration": 1.0},
            {"audio_filepath": str(tmp_path / "outside.wav"), "duration": 1.0},
            {"audio_filepath": "audio/missing.wav", "duration": 1.0},
            {"audio_filepath": "audio/long.wav", "offset": 5.0, "duration": 3.0},
            {"duration": 1.0, "text": "no file"},
            "{not json",
        ],
    )


def test_a_nemo_manifest_gives_windows_transcripts_and_per_file_licences(nemo_source, tmp_path):
    catalog = write_catalog(tmp_path, {"name": "nemo", "kind": "nemo", "path": str(nemo_source)})
    plans, recordings = standardised(catalog, tmp_path / "work")
    (plan,) = plans
    assert plan.refused_files == 1  # the non-commercial row, judged on its own
    assert plan.planned_files == 9

    window = recordings["nemo/audio/long.wav@1.000+2.000"]
    assert window["quarantine_reason"] is None
    assert window["duration"] == pytest.approx(2.0, abs=0.01)
    assert window["text_source"] == "a b"
    italian = recordings["nemo/audio/long.wav@4.000+1.500"]
    assert italian["declared_languages"] == ["it"]
    assert recordings["nemo/audio/short.wav"]["duration"] == pytest.approx(1.5, abs=0.01)

    reasons = {k: r["quarantine_reason"] for k, r in recordings.items() if r["quarantine_reason"]}
    assert reasons["nemo/../outside.wav"].startswith("path outside the source folder")
    assert reasons[f"nemo/{tmp_path / 'outside.wav'}"].startswith("path outside")
    assert reasons["nemo/audio/missing.wav"].startswith("missing file")
    assert reasons["nemo/audio/long.wav@5.000+3.000"] == (
        "window beyond the end: 5.00+3.00 s of a 6.00 s file"
    )
    assert {reasons["nemo/line-9"], reasons["nemo/line-10"]} == {
        "bad manifest row: line 9 has no audio_filepath",
        "bad manifest row: line 10 is not JSON (Expecting property name enclosed in double quotes)",
    }


def test_a_window_holds_the_audio_at_its_offset(nemo_source, tmp_path):
    catalog = write_catalog(tmp_path, {"name": "nemo", "kind": "nemo", "path": str(nemo_source)})
    workdir = tmp_path / "work"
    standardised(catalog, workdir)
    rows = [
        r for p in (workdir / "standardise").glob("*.parquet") for r in pq.read_table(p).to_pylist()
    ]
    row = next(r for r in rows if r["recording_id"].endswith("@1.000+2.000"))
    samples, _ = soundfile.read(io.BytesIO(row["audio"]), dtype="float32")
    expected = steps(6.0)[SAMPLE_RATE : 3 * SAMPLE_RATE]
    assert np.abs(samples - expected).max() < 2e-3


def lhotse_source(folder: Path, supervisions: list) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    write_audio(folder / "a.flac", steps(2.0))
    recordings = jsonl(
        folder / "recordings.jsonl.gz",
        [
            {
                "id": "rec-a",
                "sources": [{"type": "file", "channels": [0], "source": "a.flac"}],
                "sampling_rate": 16000,
                "num_samples": 32000,
                "duration": 2.0,
            },
            {
                "id": "rec-url",
                "sources": [
                    {"type": "url", "channels": [0], "source": "https://example.org/a.wav"}
                ],
                "duration": 1.0,
            },
            {"sources": []},
        ],
        compress=True,
    )
    return recordings, jsonl(folder / "supervisions.jsonl.gz", supervisions, compress=True)


def test_lhotse_recordings_carry_their_supervisions_in_time_order(tmp_path):
    recordings, supervisions = lhotse_source(
        tmp_path / "lhotse",
        [
            {
                "id": "s2",
                "recording_id": "rec-a",
                "start": 1.0,
                "duration": 1.0,
                "text": "world",
                "language": "English",
            },
            {
                "id": "s1",
                "recording_id": "rec-a",
                "start": 0.0,
                "duration": 1.0,
                "text": "hello",
                "language": "English",
            },
        ],
    )
    (source,) = load_catalog(
        write_catalog(
            tmp_path,
            {
                "name": "lh",
                "kind": "lhotse",
                "path": str(recordings),
                "supervisions": str(supervisions),
            },
        )
    )
    items = {item.key: item for item in read_source(source)}
    assert (items["rec-a"].text, items["rec-a"].language) == ("hello world", "en")
    assert items["rec-a"].duration == 2.0
    assert items["rec-url"].problem == "not a file: audio source type 'url'"
    assert items["line-3"].problem == (
        "bad manifest row: recordings.jsonl.gz line 3 has no recording id"
    )


def test_a_lhotse_recipe_folder_is_read_split_by_split(tmp_path):
    folder = tmp_path / "recipe"
    folder.mkdir()
    for split, seconds in (("dev", 1.0), ("train", 2.0)):
        write_audio(folder / f"{split}.flac", steps(seconds))
        source = {"type": "file", "channels": [0], "source": f"{split}.flac"}
        jsonl(
            folder / f"corpus_recordings_{split}.jsonl.gz",
            [{"id": "rec-1", "sources": [source], "duration": seconds}],  # same id in both
            compress=True,
        )
        jsonl(
            folder / f"corpus_supervisions_{split}.jsonl.gz",
            [{"id": "s", "recording_id": "rec-1", "start": 0, "text": f"{split} words"}],
            compress=True,
        )
    catalog = write_catalog(tmp_path, {"name": "recipe", "kind": "lhotse", "path": str(folder)})
    items = {item.key: item for item in read_source(load_catalog(catalog)[0])}
    assert {k: (i.text, i.duration) for k, i in items.items()} == {
        "corpus_dev/rec-1": ("dev words", 1.0),
        "corpus_train/rec-1": ("train words", 2.0),
    }


def broken_lhotse_and_nemo(tmp_path: Path, nemo_source: Path) -> Path:
    """A catalog of a Lhotse source whose supervisions lack recording ids, and a good one."""
    recordings, supervisions = lhotse_source(tmp_path / "lhotse", [{"id": "s1", "text": "x"}])
    entry = {"name": "lh", "kind": "lhotse", "path": str(recordings)}
    nemo = {"name": "nemo", "kind": "nemo", "path": str(nemo_source)}
    return write_catalog(tmp_path, entry | {"supervisions": str(supervisions)}, nemo)


def test_a_broken_source_is_reported_and_the_others_still_run(tmp_path, nemo_source):
    catalog = broken_lhotse_and_nemo(tmp_path, nemo_source)
    plans = {p.source.name: p for p in plan_sources(load_catalog(catalog), tmp_path / "w", 4)}
    assert "line 1 is not a supervision with recording_id" in plans["lh"].error
    assert plans["lh"].shard_ids == ()
    assert plans["nemo"].shard_ids and plans["nemo"].planned_files == 9
    survey = {r["source"]: r for r in survey_sources(load_catalog(catalog)).to_pylist()}
    assert "recording_id" in survey["lh"]["error"] and survey["lh"]["hours"] is None


def commonvoice_folder(folder: Path, header: str = "client_id\tpath\tsentence\tlocale") -> Path:
    (folder / "clips").mkdir(parents=True)
    write_audio(folder / "clips" / "one.mp3", steps(1.0))
    write_audio(folder / "clips" / "two.mp3", steps(2.0))
    rows = [
        header,
        'c1\tone.mp3\t"Hello," she said.\tit',
        "c2\ttwo.mp3\tSecond sentence.\tit",
        "c3\t../validated.tsv\tEscape.\tit",
        "c4\tgone.mp3\tMissing.\tit",
    ]
    columns = len(header.split("\t"))  # a row has as many fields as its header
    rows = ["\t".join(row.split("\t")[:columns]) for row in rows]
    (folder / "validated.tsv").write_text("\n".join(rows) + "\n")
    (folder / "train.tsv").write_text("\n".join(rows[:2]) + "\n")
    (folder / "clip_durations.tsv").write_text("clip\tduration[ms]\none.mp3\t1000\n")
    return folder


def test_a_common_voice_release_keeps_its_sentences_and_refuses_escapes(tmp_path):
    folder = commonvoice_folder(tmp_path / "cv" / "it")
    catalog = write_catalog(
        tmp_path,
        {
            "name": "cv-it",
            "kind": "commonvoice",
            "path": str(folder),
            "license": "CC0-1.0",
            "languages": ["it"],
            "splits": ["train", "validated"],
        },
    )
    (source,) = load_catalog(catalog)
    items = {item.key: item for item in read_source(source)}
    assert list(items) == [
        "clips/one.mp3",
        "clips/two.mp3",
        "clips/../validated.tsv",
        "clips/gone.mp3",
    ]  # one.mp3 is listed twice, read once
    assert items["clips/one.mp3"].text == '"Hello," she said.'
    assert items["clips/one.mp3"].duration == 1.0  # from clip_durations.tsv
    assert items["clips/../validated.tsv"].problem.startswith("path outside the source folder")
    assert items["clips/gone.mp3"].problem == "missing file: gone.mp3"
    (row,) = survey_sources([source]).to_pylist()
    assert (row["language"], row["files"], row["unreadable_files"]) == ("it", 4, 2)
    assert row["hours"] * 3600 == pytest.approx(3.0, abs=0.1)  # 1 s listed + 2 s from header


def test_a_common_voice_table_without_sentences_is_a_clear_error(tmp_path):
    folder = commonvoice_folder(tmp_path / "cv", header="client_id\tpath\ttext\tlocale")
    catalog = write_catalog(tmp_path, {"name": "cv", "kind": "commonvoice", "path": str(folder)})
    (source,) = load_catalog(catalog)
    with pytest.raises(SourceReadError, match=r"validated.tsv: no column\(s\) sentence"):
        list(read_source(source))


def hf_folder(folder: Path, card_license: str | None) -> Path:
    folder.mkdir(parents=True)
    wav = folder / "x.wav"
    write_audio(wav, steps(1.0))
    audio = [{"bytes": wav.read_bytes(), "path": "x.wav"}, {"bytes": b"junk", "path": "y.wav"}]
    wav.unlink()
    table = pa.table(
        {
            "audio": audio,
            "sentence": ["Guten Tag.", "Kaputt."],
            "language": ["de", "de"],
        }
    )
    pq.write_table(table, folder / "train.parquet")
    if card_license:
        (folder / "README.md").write_text(f"---\nlicense: {card_license}\n---\n# A dataset\n")
    return folder


def test_an_hf_dataset_streams_bytes_and_takes_its_licence_from_the_card(tmp_path):
    folder = hf_folder(tmp_path / "hf", card_license="cc-by-sa-4.0")
    entry = {"name": "hf-de", "kind": "hf", "path": str(folder), "languages": ["de"]}
    catalog = write_catalog(tmp_path, entry | {"license": None})
    plans, recordings = standardised(catalog, tmp_path / "work")
    assert plans[0].planned_files == 2
    good, junk = (recordings[f"hf-de/train/{i:08d}"] for i in range(2))
    assert (good["license"], good["text_source"]) == ("CC-BY-SA-4.0", "Guten Tag.")
    assert good["duration"] == pytest.approx(1.0, abs=0.01)
    assert junk["quarantine_reason"].startswith("unreadable")


def test_an_hf_dataset_without_any_licence_is_refused(tmp_path):
    folder = hf_folder(tmp_path / "hf", card_license=None)
    entry = {"name": "hf", "kind": "hf", "path": str(folder), "license": None}
    catalog = write_catalog(tmp_path, entry)
    (plan,) = plan_sources(load_catalog(catalog), tmp_path / "w", 4)
    assert plan.planned_files == 0 and plan.refused_files == 2


def test_curate_reports_every_broken_source_and_finishes(tmp_path, nemo_source):
    catalog = broken_lhotse_and_nemo(tmp_path, nemo_source)
    workdir = tmp_path / "work"
    args = ["curate", str(catalog), "-w", str(workdir), "--engine", "threads"]
    result = CliRunner().invoke(app, args)
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said
    assert "lh: cannot be read" in said
    assert "refused 1 files under licence 'CC BY-NC 4.0'" in said
    counts = run_query(
        workdir,
        "SELECT split_part(quarantine_reason, ':', 1) AS reason, count(*) AS n FROM recordings "
        "WHERE quarantine_reason IS NOT NULL GROUP BY 1",
    ).to_pylist()
    assert {r["reason"]: r["n"] for r in counts} == {
        "path outside the source folder": 2,
        "missing file": 1,
        "window beyond the end": 1,
        "bad manifest row": 2,
    }


def test_a_user_policy_decides_per_file_too(tmp_path, nemo_source):
    policy = tmp_path / "internal.yaml"
    policy.write_text(
        "extends: default\nrules:\n  - match: CC-BY-NC-*\n    allowed: true\n"
        "    reason: internal research project\n    obligations: [attribution, non-commercial]\n"
    )
    catalog = write_catalog(tmp_path, {"name": "nemo", "kind": "nemo", "path": str(nemo_source)})
    (plan,) = plan_sources(load_catalog(catalog), tmp_path / "w", 4, policy)
    assert (plan.planned_files, plan.refused_files) == (10, 0)
    survey = survey_sources(load_catalog(catalog), policy).to_pylist()
    nc = next(r for r in survey if r["spdx_id"] == "CC-BY-NC-4.0")
    assert nc["allowed"] and nc["reason"] == "internal research project"
    assert "non-commercial" in nc["obligations"]


def test_a_whole_common_voice_release_is_read_language_by_language(tmp_path):
    release = tmp_path / "cv-corpus"
    for lang in ("it", "de"):
        commonvoice_folder(release / lang, header="client_id\tpath\tsentence")  # no locale
    catalog = write_catalog(
        tmp_path,
        {"name": "cv", "kind": "commonvoice", "path": str(release), "languages": ["it", "de"]},
    )
    items = [item for item in read_source(load_catalog(catalog)[0]) if not item.problem]
    assert [(i.key, i.language) for i in items] == [
        ("de/clips/one.mp3", "de"),
        ("de/clips/two.mp3", "de"),
        ("it/clips/one.mp3", "it"),
        ("it/clips/two.mp3", "it"),
    ]


def test_an_hf_dataset_without_its_audio_column_is_a_clear_error(tmp_path):
    folder = hf_folder(tmp_path / "hf", card_license="cc0-1.0")
    entry = {"name": "hf", "kind": "hf", "path": str(folder), "audio_column": "speech"}
    (plan,) = plan_sources(load_catalog(write_catalog(tmp_path, entry)), tmp_path / "w", 4)
    assert "has no audio column 'speech'" in plan.error and plan.shard_ids == ()


def test_a_source_may_set_its_own_shard_size(tmp_path, nemo_source):
    entry = {"name": "nemo", "kind": "nemo", "path": str(nemo_source), "files_per_shard": 1}
    (plan,) = plan_sources(load_catalog(write_catalog(tmp_path, entry)), tmp_path / "w", 3)
    assert len(plan.shard_ids) == plan.planned_files == 9  # one file per shard, not three


@pytest.mark.parametrize("kind", ["nemo", "lhotse", "commonvoice"])
def test_a_manifest_of_binary_garbage_is_a_reported_source(tmp_path, kind):
    folder = tmp_path / "src"
    folder.mkdir()
    garbage = bytes(range(128, 256)) * 64
    manifest = {
        "nemo": "manifest.json",
        "lhotse": "recordings.jsonl",
        "commonvoice": "validated.tsv",
    }
    (folder / manifest[kind]).write_bytes(garbage)
    path = folder if kind == "commonvoice" else folder / manifest[kind]
    catalog = write_catalog(tmp_path, {"name": "bad", "kind": kind, "path": str(path)})
    (plan,) = plan_sources(load_catalog(catalog), tmp_path / "w", 4)
    assert "cannot read" in plan.error and plan.shard_ids == ()


def test_a_corrupt_parquet_file_in_an_hf_folder_is_a_reported_source(tmp_path):
    folder = hf_folder(tmp_path / "hf", card_license="cc0-1.0")
    data = (folder / "train.parquet").read_bytes()
    (folder / "train.parquet").write_bytes(data[:100] + b"\0" * 500 + data[-100:])
    catalog = write_catalog(tmp_path, {"name": "hf", "kind": "hf", "path": str(folder)})
    (plan,) = plan_sources(load_catalog(catalog), tmp_path / "w", 4)
    assert plan.error and "cannot" in plan.error and plan.shard_ids == ()

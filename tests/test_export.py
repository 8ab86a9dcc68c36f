"""Exports for NeMo and Lhotse, each read back with the consumer's own reader and compared,
sample for sample, with what `vaglio sql` says was kept."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.export.lhotse_shar import check_lhotse_shar
from pipeline.export.nemo import check_nemo
from pipeline.export.nemo_tarred import check_nemo_tarred
from pipeline.export.rows import ExportError
from pipeline.query.splits import DEFAULT_RATIOS
from pipeline.query.sql import run_query
from pipeline.text.normalise import normalise_text

runner = CliRunner()


def kept_rows(workdir) -> dict[str, dict]:
    """segment_id -> text, lang, split and decoded audio, from the SQL view and its shard."""
    rows = run_query(
        workdir,
        'SELECT segment_id, recording_id, text, lang, shard, "offset", words, split '
        "FROM segments WHERE drop_reason IS NULL",
    ).to_pylist()
    audio = {}
    for shard in {r["shard"] for r in rows}:
        table = pq.read_table(workdir / shard, columns=["segment_id", "audio"]).to_pylist()
        for row in table:
            audio[row["segment_id"]] = soundfile.read(
                io.BytesIO(row["audio"]["bytes"]), dtype="float32"
            )[0]
    return {
        r["segment_id"]: r
        | {"audio": audio[r["segment_id"]]}  # `split`: by speaker group, as every exit
        for r in rows
    }


@pytest.fixture(scope="module")
def exports(curated, tmp_path_factory):
    """Every format exported once through the CLI, which reads each back before it returns."""
    workdir, _ = curated
    out = tmp_path_factory.mktemp("exports")
    outputs = {}
    for fmt in ("nemo", "nemo-tarred", "lhotse-shar"):
        result = runner.invoke(
            app, ["export", fmt, "-w", str(workdir), "--out", str(out / fmt), "--shard-size", "10"]
        )
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.output
    return workdir, out, outputs, kept_rows(workdir)


def read_back(fmt: str, folder, splits) -> list:
    if fmt == "nemo":
        return check_nemo(folder)
    check = check_nemo_tarred if fmt == "nemo-tarred" else check_lhotse_shar
    return [entry for split in splits for entry in check(folder / split)]


@pytest.mark.parametrize("fmt", ["nemo", "nemo-tarred", "lhotse-shar"])
def test_each_export_reads_back_with_its_consumer_sample_for_sample(exports, fmt):
    _workdir, out, outputs, kept = exports
    assert f"read back {len(kept)}" in outputs[fmt]
    splits = sorted({r["split"] for r in kept.values()})
    entries = read_back(fmt, out / fmt, splits)
    assert sorted(e.segment_id for e in entries) == sorted(kept)  # every kept row, once
    for entry in entries:
        row = kept[entry.segment_id]
        assert (entry.taskname, entry.text, entry.lang, entry.source_lang) == (
            "asr",
            row["text"],
            row["lang"],
            row["lang"],
        )
        assert np.array_equal(entry.samples, row["audio"])  # FLAC is lossless


@pytest.mark.parametrize("fmt", ["nemo", "lhotse-shar"])
def test_exports_carry_each_rows_word_timings(exports, fmt):
    """NeMo's in a CTM file per row (NeMo Forced Aligner's `word_level_ctm_filepath`), read
    back by Lhotse; Lhotse's as the supervision's `alignment`: the words SQL holds, at its
    times counted from the start of the row's own audio."""
    _workdir, out, _, kept = exports
    splits = sorted({r["split"] for r in kept.values()})
    entries = [e for e in read_back(fmt, out / fmt, splits) if e.taskname == "asr"]
    assert sum(bool(e.words) for e in entries) == sum(bool(r["words"]) for r in kept.values()) > 0
    for entry in entries:
        row = kept[entry.segment_id]
        expected = [(w["start"] - row["offset"], w["end"] - row["offset"]) for w in row["words"]]
        assert len(entry.words) == len(expected), entry.segment_id
        for (_, start, end), (want_start, want_end) in zip(entry.words, expected):
            assert abs(start - want_start) < 2e-3 and abs(end - want_end) < 2e-3
        spelled = " ".join(word for word, _, _ in entry.words)
        assert normalise_text(spelled) == normalise_text(" ".join(w["text"] for w in row["words"]))
        assert all(0 <= start <= end <= len(entry.samples) / 16_000 + 1e-3
                   for _, start, end in entry.words)  # fmt: skip


def test_a_ctm_file_outside_the_export_is_an_error(exports, tmp_path):
    _, out, _, _ = exports
    shutil.copytree(out / "nemo", tmp_path / "nemo")
    manifest = next((tmp_path / "nemo").glob("*.jsonl"))
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    timed = next(i for i, x in enumerate(lines) if "word_level_ctm_filepath" in x)
    shutil.copy(tmp_path / "nemo" / lines[timed]["word_level_ctm_filepath"], tmp_path / "w.ctm")
    lines[timed]["word_level_ctm_filepath"] = "../w.ctm"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ExportError, match=r"word_level_ctm_filepath '../w.ctm' points outside"):
        check_nemo(tmp_path / "nemo")


def test_splits_never_share_a_recording(exports):
    """Splits are by speaker group (by recording without one): the demo corpus's few espeak
    voices may leave a split empty, but no recording is in two."""
    _, out, _, kept = exports
    recordings, lines = {}, []
    for split in DEFAULT_RATIOS:
        manifest = out / "nemo" / f"{split}.jsonl"
        found = (
            [json.loads(x) for x in manifest.read_text().splitlines()] if manifest.exists() else []
        )
        recordings[split] = {kept[x["segment_id"]]["recording_id"] for x in found}
        assert all(kept[x["segment_id"]]["split"] == split for x in found)
        lines += found
    assert len(lines) == len(kept)
    assert all({"source_lang", "target_lang", "pnc", "taskname"} <= set(x) for x in lines)
    assert recordings["train"]
    assert not recordings["train"] & recordings["test"]
    assert not recordings["train"] & recordings["dev"]
    assert not recordings["dev"] & recordings["test"]


def test_export_of_one_split_holds_only_that_split(exports, tmp_path):
    workdir, _, _, kept = exports
    split = min(r["split"] for r in kept.values())  # one that has rows (a split may be empty)
    result = runner.invoke(
        app,
        [
            *("export", "lhotse-shar", "-w", str(workdir)),
            *("--out", str(tmp_path / "shar"), "--split", split),
        ],
    )
    assert result.exit_code == 0, result.output
    cuts = check_lhotse_shar(tmp_path / "shar" / split)
    assert sorted(c.segment_id for c in cuts) == sorted(
        s for s, r in kept.items() if r["split"] == split
    )
    assert not any(
        (tmp_path / "shar" / other).exists() for other in DEFAULT_RATIOS if other != split
    )


def _rewrite_tar(path, keep) -> None:
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if keep(m.name)]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))


def test_a_missing_tar_member_is_an_error_not_a_silent_skip(exports, tmp_path):
    _, out, _, _ = exports

    shutil.copytree(out / "nemo-tarred" / "train", tmp_path / "train")
    first = json.loads(
        (tmp_path / "train" / "sharded_manifests" / "manifest_0.json").read_text().splitlines()[0]
    )["audio_filepath"]
    _rewrite_tar(tmp_path / "train" / "audio_0.tar", lambda name: name != first)
    with pytest.raises(ExportError, match=f"audio_0.tar: no member for manifest line '{first}'"):
        check_nemo_tarred(tmp_path / "train")

    shutil.copytree(out / "lhotse-shar" / "train", tmp_path / "shar")
    _rewrite_tar(tmp_path / "shar" / "recording.000000.tar", lambda n: "#0000." not in n)
    with pytest.raises(ExportError, match="Lhotse cannot read the Shar: Mismatched IDs"):
        check_lhotse_shar(tmp_path / "shar")


def test_a_manifest_pointing_outside_the_export_is_an_error(exports, tmp_path):
    _, out, _, _ = exports

    shutil.copytree(out / "nemo", tmp_path / "nemo")
    lines = (tmp_path / "nemo" / "train.jsonl").read_text().splitlines()
    entry = json.loads(lines[1])
    outside = tmp_path / "elsewhere.flac"
    shutil.copy(tmp_path / "nemo" / entry["audio_filepath"], outside)  # it exists, but outside
    lines[1] = json.dumps(entry | {"audio_filepath": "../elsewhere.flac"})
    (tmp_path / "nemo" / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ExportError,
        match=r"train.jsonl:2: audio_filepath '../elsewhere.flac' "
        r"points outside",
    ):
        check_nemo(tmp_path / "nemo")


def test_export_of_a_folder_that_is_not_a_workdir_says_so(tmp_path):
    result = runner.invoke(
        app, ["export", "nemo", "-w", str(tmp_path), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "holds no curation run" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_export_never_replaces_a_folder_that_is_not_an_export(exports, tmp_path):
    workdir, out, _, _ = exports
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export", "nemo", "-w", str(workdir), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a vaglio export" in " ".join(result.output.split())
    assert (tmp_path / "notes.txt").read_text() == "mine"
    again = runner.invoke(
        app, ["export", "nemo", "-w", str(workdir), "--out", str(out / "nemo"), "--no-check"]
    )
    assert again.exit_code == 0, again.output  # its own export is replaced

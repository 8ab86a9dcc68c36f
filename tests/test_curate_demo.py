"""The whole CPU pipeline on the espeak demo corpus, checked the way a user would look at it."""

from __future__ import annotations

import csv
import io
import json
import re
from itertools import pairwise

import jiwer
import pyarrow.parquet as pq
import pytest
import soundfile
from datasets import Audio, load_dataset
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.query.sql import run_query
from pipeline.run.summary import summarize
from pipeline.text.normalise import normalise_text

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics


def sql(workdir, query):
    return run_query(workdir, query).to_pylist()


def test_refused_source_is_reported_and_never_processed(curated):
    workdir, result = curated
    refused = {p.source.name: v for p in result.plans for v in p.verdicts.values() if not v.allowed}
    assert set(refused) == {"nc-lectures"}
    assert "non-commercial" in refused["nc-lectures"].reason
    assert sql(workdir, "SELECT * FROM recordings WHERE source = 'nc-lectures'") == []


def test_broken_files_are_quarantined_with_a_reason(curated):
    workdir, _ = curated
    rows = sql(
        workdir,
        "SELECT recording_id, quarantine_reason FROM recordings "
        "WHERE quarantine_reason IS NOT NULL ORDER BY recording_id",
    )
    reasons = {r["recording_id"].split("/")[-1]: r["quarantine_reason"] for r in rows}
    assert reasons["corrupt.mp3"].startswith("unreadable")
    assert reasons["truncated.wav"].startswith("truncated")
    assert not sql(workdir, "SELECT * FROM segments WHERE recording_id LIKE '%corrupt%'")


def test_every_recording_is_16k_mono_with_a_checksum_and_duplicates_are_marked(curated):
    workdir, _ = curated
    (dup,) = sql(
        workdir, "SELECT recording_id, duplicate_of FROM recordings WHERE duplicate_of IS NOT NULL"
    )
    assert {dup["recording_id"], dup["duplicate_of"]} == {
        "open-radio/en-01.flac",
        "open-radio/en-01-copy.wav",
    }
    assert not sql(workdir, f"SELECT * FROM segments WHERE recording_id = '{dup['recording_id']}'")
    stereo = sql(
        workdir,
        "SELECT count(*) AS n FROM recordings WHERE channels_in = 2 AND sample_rate_in = 44100",
    )
    assert stereo[0]["n"] >= 1
    table = pq.read_table(workdir / "dataset" / "data", columns=["audio"])
    audio, rate = soundfile.read(io.BytesIO(table["audio"][0]["bytes"].as_py()))
    assert rate == 16000 and audio.ndim == 1


def test_kept_segments_carry_language_text_licence_and_attribution(curated, demo_catalog):
    workdir, _ = curated
    kept = sql(workdir, "SELECT * FROM segments WHERE drop_reason IS NULL")
    assert kept
    assert {r["license"] for r in kept} == {"CC-BY-4.0", "CC0-1.0"}
    assert all("vaglio demo corpus" in r["attribution"] for r in kept)
    languages = {r["recording_id"].split("/")[-1][:2]: r["lang"] for r in kept}
    assert languages["en"] == "en" and languages["it"] == "it"
    assert sql(workdir, "SELECT count(*) AS n FROM segments WHERE duration > 30.01")[0]["n"] == 0


def test_kept_text_matches_the_spoken_text(curated, demo_catalog):
    """Word error rate per recording against what espeak-ng was asked to say."""
    workdir, _ = curated
    references = {}
    with open(demo_catalog.parent / "references.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            references[f"{row['source']}/{row['file']}"] = row["text"]
    hypotheses = sql(
        workdir,
        "SELECT recording_id, string_agg(text, ' ' ORDER BY \"offset\") AS t "
        "FROM segments WHERE drop_reason IS NULL AND recording_id LIKE "
        "'open-radio/en-%' GROUP BY recording_id",
    )
    refs = [normalise_text(references[h["recording_id"]]) for h in hypotheses]
    hyps = [normalise_text(h["t"]) for h in hypotheses]
    error = jiwer.wer(refs, hyps)
    assert error < 0.25, f"English WER {error:.2f} on espeak speech"


def test_language_gate_drops_the_recording_in_an_undeclared_language(curated):
    workdir, _ = curated
    rows = sql(workdir, "SELECT * FROM segments WHERE recording_id = 'open-radio/de-01.wav'")
    assert rows, "the German recording must stay visible in the manifest"
    assert {r["drop_reason"] for r in rows} == {"audio_lang_undeclared"}
    assert {r["lang"] for r in rows} == {"de"}
    assert all(r["text"] is None for r in rows), "a gated recording is not transcribed"


def test_pass2_joins_sentences_into_utterances_and_keeps_both_texts(curated):
    workdir, _ = curated
    rows = sql(
        workdir,
        "SELECT * FROM segments WHERE recording_id = 'open-radio/long-lecture.flac' "
        'ORDER BY "offset"',
    )
    # ~30 spoken sentences in 165 s: utterances join whole sentences up to ~20 s.
    assert len(rows) >= 165 / 21
    assert all(0.1 <= r["duration"] <= 21.0 for r in rows)
    ended = [re.search(r"[.!?]$", r["text_pass1"]) is not None for r in rows]
    assert sum(ended) >= 0.8 * len(rows)  # Whisper leaves out a full stop now and then
    assert all(a["offset"] + a["duration"] <= b["offset"] + 1e-6 for a, b in pairwise(rows))
    kept = [r for r in rows if r["drop_reason"] is None]
    assert all(r["text_pass1"] and r["pass_wer"] <= 0.5 for r in kept)
    assert sorted(r["pass_wer"] for r in kept)[len(kept) // 2] <= 0.1  # the passes mostly agree


def test_tones_and_silence_leave_no_kept_rows(curated):
    workdir, _ = curated
    kept = sql(
        workdir,
        "SELECT * FROM segments WHERE drop_reason IS NULL "
        "AND (recording_id LIKE '%tones%' OR recording_id LIKE '%silence%')",
    )
    assert kept == []


def test_dataset_shards_load_with_hugging_face_datasets(curated):
    workdir, _ = curated
    files = str(workdir / "dataset" / "data" / "*.parquet")
    dataset = load_dataset("parquet", data_files=files, split="train")
    assert isinstance(dataset.features["audio"], Audio)
    dataset = dataset.cast_column("audio", Audio(decode=False))
    kept = sql(workdir, "SELECT count(*) AS n FROM segments WHERE drop_reason IS NULL")[0]["n"]
    assert len(dataset) == kept
    row = dataset[0]
    audio, rate = soundfile.read(io.BytesIO(row["audio"]["bytes"]))
    assert rate == 16000
    assert abs(len(audio) / rate - row["duration"]) < 0.01


def test_summary_accounts_for_every_recording(curated):
    workdir, _ = curated
    summary = summarize(workdir)
    assert summary.recordings == 17  # 15 files and two windows of the read-aloud session
    assert summary.quarantined == {"truncated": 1, "unreadable": 1}
    assert summary.duplicates == 1  # the copy
    assert summary.without_speech in (1, 2)  # the silent file; the tones, unless VAD fires
    assert summary.dropped["audio_lang_undeclared"][0] >= 1
    assert 0 < summary.hours_kept < summary.hours_in
    assert summary.word_timings == {"timed": summary.segments_kept}  # every kept row's words


def test_windows_of_a_nemo_manifest_keep_the_source_transcript(curated):
    workdir, _ = curated
    windows = sql(
        workdir,
        'SELECT recording_id, "offset", duration, text_source FROM recordings '
        "WHERE source = 'read-aloud' ORDER BY \"offset\"",
    )
    assert len(windows) == 2 and all(w["text_source"] for w in windows)
    assert windows[0]["recording_id"].startswith("read-aloud/session.wav@")
    assert windows[1]["offset"] > windows[0]["offset"] + windows[0]["duration"] - 0.7


def test_pseudo_labels_are_scored_against_the_source_transcripts(curated):
    workdir, _ = curated
    args = ["eval", "--against-source", "--workdir", str(workdir), "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    scores = {row["lang"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert scores["en"]["utterances"] == 2
    assert scores["en"]["wer"] < 0.25


def test_the_report_shows_the_funnel_the_drops_and_examples(curated, tmp_path):
    workdir, _ = curated
    result = CliRunner().invoke(app, ["report", "--workdir", str(workdir), "--examples", "2"])
    assert result.exit_code == 0, result.output
    folder = workdir / "report"
    assert all((folder / name).stat().st_size > 0 for name in ("funnel.png", "drops.png"))
    markdown = (folder / "report.md").read_text()
    funnel = markdown.split("## Where the hours went")[1].split("##")[0]
    rows = [line.split("|")[2] for line in funnel.splitlines() if line.count("|") == 3]
    hours = [float(cell) for cell in rows[2:]]  # after the header and its rule
    assert len(hours) == 5 and hours == sorted(hours, reverse=True) and hours[-1] > 0
    assert "| audio_lang_undeclared | de | 1 |" in markdown
    assert "open-radio/de-01.wav#0000" in markdown.split("## Dropped as `audio_lang_undeclared`")[1]
    assert "<table>" in (folder / "report.html").read_text()
    missing = CliRunner().invoke(app, ["report", "--workdir", str(tmp_path)])
    assert missing.exit_code == 2 and "no curation run" in " ".join(missing.output.split())

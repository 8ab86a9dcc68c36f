"""Punctuation and translation stages in a real curation, through the `openai` backend and a
real HTTP server process: answers that change words or come back in the wrong language are
refused, the row keeps what it had, and SQL counts every outcome."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from llm_server import CannedLlmServer
from typer.testing import CliRunner

from manifests.views import current_shards
from pipeline.cli import app
from pipeline.config import ConfigError, load_config
from pipeline.query.sql import run_query
from pipeline.run.curate import build_stages
from pipeline.stage import StageConfigError

ITALIAN = "Questa è una frase italiana tradotta con cura dal modello."
BEHAVIOURS = [
    # PnC and translation prompts both end with the text: one answer serves both, and fails
    # both guards (a changed word; English where Italian was asked for).
    {"match": "library", "answer": "The bookshop will be closed on Monday for repairs."},
    {"match": "Translate the following", "answer": f"Italian: {ITALIAN}"},
]


def write_config(folder: Path, base_url: str) -> Path:
    llm = {"backend": "openai", "model": "canned", "base_url": base_url, "concurrency": 4}
    config = {
        "punctuate": {"llm": llm, "guard": {"force": True}},
        "translate": {"llm": llm, "targets": {"*": ["it"], "read-aloud": ["it", "de"]}},
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def llm_workdir(curated, demo_catalog, tmp_path_factory):
    """A copy of the curated demo, curated again with PnC and translation switched on: only
    the new stages and the shards after them run."""
    reference, _ = curated
    folder = tmp_path_factory.mktemp("llm")
    workdir = folder / "work"
    shutil.copytree(reference, workdir)
    with CannedLlmServer(BEHAVIOURS, folder) as server:
        config = write_config(folder, server.base_url)
        args = ["curate", str(demo_catalog), "-w", str(workdir), "-c", str(config)]
        result = CliRunner().invoke(app, [*args, "--engine", "threads"])
        requests = server.stats()["requests"]
    assert result.exit_code == 0, result.output
    return workdir, " ".join(result.output.split()), requests


def sql(workdir: Path, query: str) -> list[dict]:
    return run_query(workdir, query).to_pylist()


def test_only_the_new_stages_run_on_a_curated_workdir(llm_workdir):
    workdir, said, requests = llm_workdir
    assert requests > 0
    shards = len(current_shards(workdir))
    names = [stage.name for stage in build_stages(load_config(None))]
    again = len(names) - names.index("punctuate")  # punctuate and every stage after it
    ran, skipped = again * shards, (len(names) - again) * shards
    assert f"shard tasks run: {ran}, skipped as already complete: {skipped}" in said


def test_pnc_keeps_the_transcript_when_the_answer_changes_a_word(llm_workdir):
    workdir, said, _ = llm_workdir
    rows = sql(workdir, "SELECT text, text_asr, pnc_status FROM segments WHERE drop_reason IS NULL")
    library = [r for r in rows if "library" in r["text_asr"]]
    # The canned answer is one sentence with a word changed; in a row of several sentences
    # it also leaves words out, and the guard names what it saw first.
    refusals = {r["pnc_status"] for r in library}
    assert library and len(refusals) == 1 and refusals <= {"pnc_changed_words", "pnc_removed_words"}
    assert all(r["text"] == r["text_asr"] for r in library)  # the LLM corrupted nothing
    assert {r["pnc_status"] for r in rows} == {"accepted", *refusals}
    assert f"punctuation: {next(iter(refusals))}" in said
    assert "punctuation decoding" in said and "free, then the word guard" in said


def test_translations_are_kept_or_refused_per_target_and_counted_in_sql(llm_workdir):
    workdir, said, _ = llm_workdir
    counts = {
        (r["lang"], r["reason"]): r["n"]
        for r in sql(workdir, "SELECT lang, reason, count(*) AS n FROM translations GROUP BY ALL")
    }
    assert counts[("it", None)] > 0 and counts[("it", "translation_wrong_language")] > 0
    (read_aloud,) = sql(
        workdir,
        "SELECT count(*) AS n FROM segments WHERE source = 'read-aloud' AND drop_reason IS NULL",
    )
    assert counts[("de", "translation_wrong_language")] == read_aloud["n"] > 0  # Italian back
    kept = sql(workdir, "SELECT text, source_lang FROM translations WHERE reason IS NULL")
    assert {r["text"] for r in kept} == {ITALIAN}  # the "Italian:" label is stripped
    assert {r["source_lang"] for r in kept} == {"en"}  # Italian rows are not sent to Italian
    refused = sql(workdir, "SELECT answer FROM translations WHERE reason IS NOT NULL LIMIT 1")
    assert refused[0]["answer"]  # the model's answer is kept, to see why it failed
    assert "translation to it: kept" in said


def test_targets_without_a_model_and_bad_llm_settings_fail_before_any_work(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("translate: {targets: {'*': [it]}}\n")
    with pytest.raises(StageConfigError, match=r"translate\.llm names no model"):
        build_stages(load_config(config))
    config.write_text("punctuate: {llm: {backend: openai, concurrency: 0}}\n")
    with pytest.raises(ConfigError, match=r"punctuate\.llm\.concurrency: "):
        load_config(config)
    config.write_text("translate: {targets: {'*': it}}\n")
    with pytest.raises(ConfigError, match=r"translate\.targets"):
        load_config(config)


def test_the_dataset_carries_the_kept_translations(llm_workdir):
    from datasets import load_dataset

    workdir, _, _ = llm_workdir
    files = str(workdir / "dataset" / "data" / "*.parquet")
    dataset = load_dataset("parquet", data_files=files, split="train").remove_columns("audio")
    translated = [row for row in dataset if row["translations"]]
    assert translated and all(
        row["translations"] == [{"lang": "it", "text": ITALIAN}] for row in translated
    )
    assert all(row["text_asr"] for row in dataset)

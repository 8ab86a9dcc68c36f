"""PnC and translation by a real model: the default offline one (Qwen2.5-Coder-1.5B-Instruct,
joined from its PyPI wheels), served on the CPU by llama-cpp-python's OpenAI-compatible server
on 127.0.0.1, reached through vaglio's `openai` backend. A small model is sometimes wrong; the
guards must keep every row safe whatever it answers, and the counts must show what they
refused and why."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.llm import offline_model
from pipeline.llm.demo_config import local_llm_config
from pipeline.llm.local_server import local_server
from pipeline.query.sql import run_query
from pipeline.run.report import write_report
from pipeline.text.normalise import normalise_text
from pipeline.text.translation import REASONS

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def real_llm_workdir(curated, demo_catalog, tmp_path_factory):
    """The curated demo, curated again as `vaglio demo --llm` does: PnC on every kept row
    (Whisper's punctuation or not) and English <-> Italian translation by the real model."""
    reference, _ = curated
    workdir = tmp_path_factory.mktemp("real-llm") / "work"
    shutil.copytree(reference, workdir)
    with local_llm_config(workdir) as config:
        args = ["curate", str(demo_catalog), "-w", str(workdir), "-c", str(config)]
        result = CliRunner().invoke(app, [*args, "--engine", "threads"])
    assert result.exit_code == 0, result.output
    return workdir, " ".join(result.output.split())


def sql(workdir, query: str) -> list[dict]:
    return run_query(workdir, query).to_pylist()


def test_every_punctuated_row_keeps_its_words_or_its_transcript(real_llm_workdir):
    workdir, said = real_llm_workdir
    rows = sql(workdir, "SELECT text, text_asr, pnc_status FROM segments WHERE drop_reason IS NULL")
    # The grammar holds the model to each row's words, on every CPU: the word guard checks
    # every answer and never fires, whatever punctuation the model chose.
    assert rows and {r["pnc_status"] for r in rows} == {"accepted"}
    assert all(normalise_text(r["text"]) == normalise_text(r["text_asr"]) for r in rows)
    assert "punctuation decoding" in said and "constrained (gbnf)" in said


def test_translations_are_kept_or_refused_with_a_reason(real_llm_workdir):
    workdir, said = real_llm_workdir
    rows = sql(workdir, "SELECT source_lang, lang, text, reason, answer FROM translations")
    assert {(r["source_lang"], r["lang"]) for r in rows} == {("en", "it"), ("it", "en")}
    assert {r["reason"] for r in rows} <= {None, *REASONS}
    assert all((r["text"] is None) != (r["reason"] is None) for r in rows)
    asked = [r for r in rows if not (r["reason"] or "").startswith("translation_source_")]
    assert asked and all(r["answer"] is not None for r in asked)  # kept to see why it failed
    # The default model translates usefully (chrF 58 en->it, 77 it->en in the bench, 97 % kept
    # there): most of the demo's translations pass the guards, with room for a close call.
    assert sum(r["reason"] is None for r in asked) >= len(asked) / 2
    assert "translation to it:" in said and "translation to en:" in said


def test_the_server_answers_on_loopback_and_is_stopped_by_its_process_id():
    with local_server() as server:
        models = httpx.get(f"{server.base_url}/models", timeout=10).json()
        assert server.base_url.startswith("http://127.0.0.1:")
        assert [m["id"] for m in models["data"]] == [server.model]
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def test_a_model_file_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VAGLIO_CACHE", str(tmp_path / "cache"))
    damaged = tmp_path / offline_model.SMOLLM2_FILE
    damaged.write_bytes(b"GGUF but not the published bytes")
    monkeypatch.setattr(offline_model, "_packaged_file", lambda: damaged)
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        offline_model.smollm2_path()
    assert not list((tmp_path / "cache" / "models").iterdir())  # nothing half-written stays


def test_the_report_shows_what_the_model_answered_and_what_the_guards_did(real_llm_workdir):
    workdir, _ = real_llm_workdir
    report = (write_report(workdir) / "report.md").read_text()
    statuses = {r["pnc_status"] for r in sql(workdir, "SELECT pnc_status FROM segments")} - {None}
    assert "## Punctuation" in report and all(f"| {s} |" in report for s in statuses)
    assert "## Translations" in report
    refused = sql(workdir, "SELECT reason, count(*) AS n FROM translations WHERE answer IS NOT "
                  "NULL AND reason IS NOT NULL GROUP BY ALL")  # fmt: skip
    if refused:  # each reason with what the model answered, two examples at most
        assert "## Translations refused: what the model answered" in report
        for row in refused:
            assert report.count(f"| {row['reason']} |") >= min(row["n"], 2)
    assert "## What the LLM answered" in report
    assert "| punctuation |" in report and "| translation to it |" in report

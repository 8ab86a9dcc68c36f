"""A config that cannot work is refused before the first stage runs, in one line naming the key.

Each story writes a pipeline YAML a user might write (a zero, a negative, NaN, a typo, a GPU this
machine does not have, a model path that is not there), runs `vaglio curate`, and checks what
the user sees: exit code 2, one `error:` line naming the file and the key path, no traceback,
and no stage output in the workdir.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.cli import app
from pipeline.config import ConfigError, load_config
from pipeline.demo_corpus import write_audio

runner = CliRunner()


@pytest.fixture
def catalog(tmp_path):
    """One source of one second of a tone: enough for a run to start."""
    (tmp_path / "audio").mkdir()
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    write_audio(tmp_path / "audio" / "tone.wav", tone.astype(np.float32))
    source = {"name": "tones", "kind": "local", "path": "audio", "license": "CC0-1.0",
              "attribution": "test", "languages": ["en"]}  # fmt: skip
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump({"sources": [source]}))
    return tmp_path / "catalog.yaml"


def curate_with(tmp_path, catalog, settings: str):
    config = tmp_path / "pipeline.yaml"
    config.write_text(settings)
    workdir = tmp_path / "work"
    result = runner.invoke(
        app, ["curate", str(catalog), "-w", str(workdir), "-c", str(config), "--engine", "threads"]
    )
    return result, workdir


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("segment: {max_chunk_s: 0}", "segment.max_chunk_s: Input should be greater than 0"),
        ("segment: {max_chunk_s: -5}", "segment.max_chunk_s: Input should be greater than 0"),
        ("segment: {vad: {threshold: .nan}}", "segment.vad.threshold: Input should be a finite"),
        ("pass1: {lid_windows: 0}", "pass1.lid_windows: Input should be greater than or equal"),
        ("pass1: {min_lang_prob: 2}", "pass1.min_lang_prob: Input should be less than or equal"),
        ("pass2: {asr: {beam_size: 0}}", "pass2.asr.beam_size: Input should be greater than or"),
        ("pass1: {asr: {cpu_threads: -1}}", "pass1.asr.cpu_threads: Input should be greater"),
        ("pass2: {asr: {backend: whisper}}", "pass2.asr.backend: Input should be 'faster-whisper'"),
        ("files_per_shard: 0", "files_per_shard: Input should be greater than or equal to 1"),
        ("files_per_shard: 100000000000000000000", "files_per_shard: Input should be less than"),
        ("filter: {max_pass_wer: .nan}", "filter.max_pass_wer: Input should be a finite number"),
        ("filter: {max_pass_wer: -1}", "filter.max_pass_wer: Input should be greater than or"),
        ("filter: {min_duration_s: .inf}", "filter.min_duration_s: Input should be a finite"),
        ("standardise: {min_duration_s: .inf}", "standardise.min_duration_s: Input should be a"),
        ("filter: {min_duration_s: 50}", "filter: min_duration_s (50.0) is above max_duration_s"),
        ("workers: '2'", "workers: Input should be a valid integer, got '2'"),
        ("sourcse: {}", "sourcse: unknown key; known here: files_per_shard"),
        ("pass1: {asr: {modle: x}}", "pass1.asr.modle: unknown key; known here: backend"),
        ("resources: {pas1: {num_gpus: 1}}", "resources: unknown stage(s) ['pas1']"),
        ("punctuate: {llm: {backend: openai, concurrency: 0}}", "punctuate.llm.concurrency: "),
    ],
)
def test_a_setting_out_of_range_is_refused_before_any_stage(tmp_path, catalog, settings, message):
    result, workdir = curate_with(tmp_path, catalog, settings)
    said = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 2, result.output
    assert said.startswith("error: ") and said.count("error") == 1, said
    assert f"pipeline.yaml: {message}" in said and "Traceback" not in said
    assert not [p for p in workdir.glob("*") if p.is_dir()]  # no stage wrote anything


def test_a_gpu_this_machine_lacks_is_named_before_any_stage(tmp_path, catalog):
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA GPU")
    result, workdir = curate_with(tmp_path, catalog, "pass1: {asr: {device: cuda}}")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "pass1.asr.device: cuda, but this machine has no CUDA GPU; use device: cpu" in said
    assert not (workdir / "standardise").exists()


def test_a_model_path_that_is_not_there_is_named_not_looked_up_on_the_hub(tmp_path, catalog):
    missing = tmp_path / "models" / "whisper-small-ct2"
    result, _ = curate_with(tmp_path, catalog, f"pass2: {{asr: {{model: {missing}}}}}")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"pass2.asr.model: {missing} does not exist (a local model path" in said
    assert "Repository" not in said and "repo_id" not in said
    not_a_model = tmp_path / "models"
    not_a_model.mkdir()
    result, _ = curate_with(tmp_path, catalog, f"pass1: {{lid: {{model: {not_a_model}}}}}")
    assert "pass1.lid.model" in result.output and "no model.bin" in result.output


def test_what_a_config_leaves_out_keeps_its_stage_defaults(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("pass1: {asr: {model: whisper-base}}\nsegment: {vad: {threshold: 0.4}}\n")
    config = load_config(path)
    assert (config.pass1.asr.beam_size, config.pass2.asr.beam_size) == (1, 5)
    assert config.segment.vad.threshold == 0.4 and config.segment.max_chunk_s == 30.0
    path.write_text("segment: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"segment: Input should be a dictionary"):
        load_config(path)


@pytest.mark.parametrize("ratios", ["train=nan,dev=0.1,test=0.1", "train=inf,dev=0,test=0"])
def test_export_refuses_split_shares_that_are_not_numbers(tmp_path, ratios):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["export", "nemo", "-w", str(tmp_path), "--out", str(out), "--ratios", ratios]
    )
    assert result.exit_code == 2, result.output
    assert "split ratios must be finite" in " ".join(result.output.split())
    assert not out.exists()

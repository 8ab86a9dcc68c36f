"""Training configs, learning-rate schedules and the by-recording split: what a user gets
wrong or needs to trust before a training job starts. No NeMo is needed here."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.query.splits import split_of
from training.config import ConfigError, build_config, load_config
from training.schedules import learning_rate

runner = CliRunner()


def test_presets_follow_fama():
    small, medium = build_config({"preset": "small"}), build_config({"preset": "medium"})
    assert (small.model.encoder_layers, small.model.decoder_layers) == (12, 6)
    assert (medium.model.encoder_layers, medium.model.decoder_layers) == (24, 12)
    for preset in (small, medium):
        assert (preset.model.d_model, preset.model.ffn_dim, preset.model.heads) == (1024, 4096, 16)
    assert (small.model.inter_ctc_layer, medium.model.inter_ctc_layer) == (8, 16)
    assert medium.schedule.name == "owsm"
    assert (medium.loss.ctc_inter, medium.loss.ce, medium.loss.ctc_top) == (1.0, 5.0, 2.0)
    assert build_config({"preset": "tiny", "stage1": {"max_steps": 7}}).stage1.max_steps == 7


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"preset": "huge"}, "'preset' must be one of medium, small, tiny"),
        ({"preset": "tiny", "model": {"d_modle": 8}}, "unknown key 'model.d_modle'"),
        ({"preset": "tiny", "optimizer": {}}, "unknown key 'optimizer'"),
        ({"preset": "tiny", "stage1": {"max_steps": "many"}}, "stage1.max_steps: Input should"),
        ({"preset": "tiny", "stage1": {"max_steps": -5}}, "stage1.max_steps: Input should"),
        ({"preset": "tiny", "optim": {"lr": float("nan")}}, "optim.lr: Input should be a finite"),
        ({"preset": "tiny", "loss": {"ce": -1}}, "loss.ce: Input should be greater than or equal"),
        ({"preset": "tiny", "schedule": {"name": "cosine"}}, "schedule.name: Input should be"),
        (
            {"preset": "tiny", "data": {"split": {"train": 0.9, "dev": 0.2, "test": 0.1}}},
            "data: split ratios must be non-negative and sum to 1",
        ),
        (
            {"preset": "tiny", "data": {"split": {"train": float("nan"), "dev": 0.5, "test": 0.5}}},
            "data.split.train: Input should be a finite number, got nan",
        ),
        ({"preset": "tiny", "model": {"inter_ctc_layer": 9}}, "model: inter_ctc_layer must be"),
    ],
)
def test_a_bad_key_or_value_is_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_config(settings, "my.yaml")


def test_the_cli_refuses_a_bad_config_in_one_line(tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("preset: tiny\nmodel: {d_modle: 8}\n")
    result = runner.invoke(
        app, ["train", str(config), "--workdir", str(tmp_path), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())  # the console wraps long lines
    assert message.startswith("error:") and message.count("error") == 1, result.output
    assert "my.yaml: unknown key 'model.d_modle'" in message and "Traceback" not in message
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_schedules_match_their_formulas():
    peak, w = 2e-4, 1000
    config = build_config(
        {
            "preset": "tiny",
            "schedule": {"warmup_steps": w, "alpha": 1.5, "owsm_lr": 2e-5, "owsm_step": 500},
        }
    )
    schedule = config.schedule

    def lr(name: str, step: int) -> float:
        return learning_rate(step, peak, dataclasses.replace(schedule, name=name))

    assert lr("linear", 250) == pytest.approx(peak * 0.25)
    assert lr("polynomial", 250) == pytest.approx(peak * 0.25**1.5)
    assert lr("exponential", 250) == pytest.approx(peak * (math.e**0.375 - 1) / (math.e**1.5 - 1))
    assert lr("owsm", 250) == pytest.approx(1e-5)  # halfway to 2e-5 at step 500
    assert lr("owsm", 750) == pytest.approx(2e-5 + (peak - 2e-5) / 2)
    for name in ("linear", "owsm", "exponential", "polynomial"):
        assert lr(name, w) == pytest.approx(peak)  # every warmup ends at the peak
        assert lr(name, 4 * w) == pytest.approx(peak * math.sqrt(1 / 4))  # then η·sqrt(w/i)
        assert lr(name, 0) == 0.0


def test_plot_lr_draws_the_schedules(tmp_path):
    config = tmp_path / "medium.yaml"
    config.write_text("preset: medium\n")
    result = runner.invoke(app, ["train", str(config), "--plot-lr"])
    assert result.exit_code == 0, result.output
    png = tmp_path / "medium.lr.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_recording_never_spans_two_splits(curated):
    workdir, _ = curated
    ratios = build_config({"preset": "tiny"}).data.split
    table = pq.read_table(workdir / "dataset" / "data", columns=["segment_id", "recording_id"])
    splits = defaultdict(set)
    for row in table.to_pylist():
        splits[row["recording_id"]].add(split_of(row["recording_id"], ratios))
    assert all(len(s) == 1 for s in splits.values())
    # deterministic, and roughly the ratios over many ids
    assert split_of("a/b.wav", ratios) == split_of("a/b.wav", dict(ratios))
    counts = defaultdict(int)
    for i in range(4000):
        counts[split_of(f"rec-{i}", ratios)] += 1
    assert 0.75 < counts["train"] / 4000 < 0.85


def test_a_config_file_that_is_not_yaml_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("preset: [tiny\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_config(path)

"""Audio quality per segment: the SNR estimate on signals whose SNR is known, DNSMOS on a real
clip and a noisy copy of it, the quality stage's figures in the rows (and its resume), the
filter rules that drop on them with their own reasons, and the report's histograms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile

from manifests.schemas import MANIFEST, RECORDINGS, UTTERANCES
from pipeline.audio.decode import SAMPLE_RATE, to_flac
from pipeline.config import ConfigError, build_config
from pipeline.quality import dnsmos
from pipeline.quality.dnsmos import WINDOW, Dnsmos, windows
from pipeline.quality.snr import snr_db
from pipeline.query.sql import run_query
from pipeline.run.report import write_report
from pipeline.run.runner import StageRunner, write_shard
from pipeline.stage import ShardContext
from pipeline.stages.filter import DNSMOS_LOW, SNR_LOW, Filter, FilterConfig
from pipeline.stages.quality import Quality, QualityConfig

CLIP = Path(__file__).parent / "data" / "real_speech" / "goforward.flac"  # 2.8 s, real


def tone_bursts(snr: float | None, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A 220 Hz tone on for 200 ms, off for 100 ms, under white noise `snr` dB below the tone's
    power while on (None: digital silence): speech-like pauses with a ratio known exactly."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.1 * np.sin(2 * np.pi * 220 * t) * ((t % 0.3) < 0.2)  # power 0.005 while on
    if snr is None:
        return tone.astype(np.float32)
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (tone + noise * math.sqrt(0.005 / 10 ** (snr / 10))).astype(np.float32)


@pytest.mark.parametrize("snr", [30.0, 20.0, 10.0, 0.0])
def test_snr_reads_the_known_ratio_of_tone_bursts_over_noise(snr):
    assert snr_db(tone_bursts(snr)) == pytest.approx(snr, abs=1.5)


def test_snr_of_noise_alone_silence_and_speech_over_digital_silence():
    noise = np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.1
    assert snr_db(noise) < 0  # nothing stands above the quietest frames
    assert snr_db(np.zeros(SAMPLE_RATE, np.float32)) == pytest.approx(-30)
    assert 60 < snr_db(tone_bursts(None)) <= 100


def test_snr_refuses_a_segment_too_short_to_measure():
    with pytest.raises(ValueError, match="at least 10 frames"):
        snr_db(np.zeros(1000, np.float32))


def test_a_short_segment_fills_one_window_and_a_long_one_is_covered_part_by_part():
    short = np.arange(1000, dtype=np.float32)
    (filled,) = windows(short, most=3)
    assert len(filled) == WINDOW and np.array_equal(filled[:2000], np.tile(short, 2))
    long = np.arange(3 * WINDOW + 5, dtype=np.float32)
    parts = windows(long, most=10)
    assert len(parts) == 4 and all(len(w) == WINDOW for w in parts)
    covered = np.unique(np.concatenate(parts))
    assert np.array_equal(covered, long)  # every sample is rated
    (middle,) = windows(long, most=1)
    assert middle[0] == pytest.approx((len(long) - WINDOW) / 2, abs=1)


def test_a_model_file_that_fails_its_checksum_is_refused(monkeypatch):
    monkeypatch.setattr(dnsmos, "MODEL_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match=r"checksum mismatch.*reinstall speechmos"):
        dnsmos.dnsmos_model_path()


def real_clip() -> np.ndarray:
    samples, rate = soundfile.read(CLIP, dtype="float32")
    assert rate == SAMPLE_RATE
    return samples


def with_white_noise(samples: np.ndarray, share: float, seed: int = 2) -> np.ndarray:
    """`samples` plus white noise whose RMS is `share` of theirs."""
    noise = np.random.default_rng(seed).standard_normal(len(samples))
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return (samples + share * rms * noise).astype(np.float32)


@pytest.mark.numerics
def test_dnsmos_rates_a_noisy_copy_of_a_real_clip_below_the_clean_one():
    clean = real_clip()
    noisy = with_white_noise(clean, 1.0)  # 0 dB against the clip's mean power
    one_by_one = np.array(list(Dnsmos(batch_size=1).rate([clean, noisy])))
    batched = np.array(list(Dnsmos(batch_size=3).rate([clean, noisy])))
    assert np.allclose(one_by_one, batched, atol=1e-3)  # batching changes no rating
    assert ((one_by_one >= 1) & (one_by_one <= 5)).all()
    (_, clean_bak, clean_ovrl), (_, noisy_bak, noisy_ovrl) = one_by_one
    assert clean_ovrl - noisy_ovrl > 0.5
    assert clean_bak - noisy_bak > 0.5  # the background is what got worse


def test_dnsmos_reads_segments_only_as_it_rates_them():
    """Memory stays flat: segments are pulled one batch ahead, never all at once."""
    pulled = []

    def segments():
        for number in range(6):
            pulled.append(number)
            yield np.full(SAMPLE_RATE, 0.01, np.float32)

    ratings = Dnsmos(batch_size=2).rate(segments())
    next(ratings)
    assert len(pulled) <= 3


# --- the stage and the filter, on a shard built by hand from the real clip ---

TEXT = "go forward ten meters"


def write_input_shard(workdir, rows: list[dict], audio: dict[str, np.ndarray]) -> None:
    """`standardise` and `pass2` outputs of shard s1 with completion markers, as a run leaves
    them: one recording per entry of `audio`, one utterance per row."""
    base = {"source": "clips", "license": "CC0-1.0", "declared_languages": ["en"]}
    recordings = [
        base | {"recording_id": rid, "duration": len(a) / SAMPLE_RATE, "audio": to_flac(a)}
        for rid, a in audio.items()
    ]
    write_shard(workdir, "standardise", "s1", pa.Table.from_pylist(recordings, RECORDINGS), "in")
    defaults = base | {"lang": "en", "lang_prob": 0.99, "text": TEXT, "text_pass1": TEXT}
    defaults |= {"text_written": TEXT}
    filled = [
        defaults | {"segment_id": f"{r['recording_id']}#{i:04d}", "pass_wer": 0.0} | r
        for i, r in enumerate(rows)
    ]
    write_shard(workdir, "pass2", "s1", pa.Table.from_pylist(filled, UTTERANCES), "in")


@pytest.fixture
def shard(tmp_path):
    clip = real_clip()
    audio = {"clean": clip, "noisy": with_white_noise(clip, 0.5)}  # 6 dB
    length = len(clip) / SAMPLE_RATE
    rows = [
        {"recording_id": "clean", "offset": 0.0, "duration": length},
        {"recording_id": "noisy", "offset": 0.0, "duration": length},
        {"recording_id": "noisy", "offset": 0.0, "duration": 0.3, "text": "go",
         "text_written": "go"},  # too short
        {"recording_id": "clean", "offset": 0.0, "duration": length, "text": None,
         "text_pass1": None, "text_written": None, "gate_reason": "audio_lang_undeclared"},
    ]  # fmt: skip
    write_input_shard(tmp_path, rows, audio)
    return tmp_path


def run_filter(workdir, config: FilterConfig) -> list[str | None]:
    return Filter(config).run(ShardContext("s1", workdir))["drop_reason"].to_pylist()


@pytest.mark.numerics
def test_quality_figures_reach_the_rows_and_the_filter_drops_on_them_only_when_asked(shard):
    outcome = StageRunner(shard).run(Quality(QualityConfig()), "s1")
    assert not outcome.skipped and outcome.rows == 4
    rows = ShardContext("s1", shard).read("quality").to_pylist()
    clean, noisy, short, gated = rows
    for rated in (clean, noisy):
        assert 1 <= rated["dnsmos_ovrl"] <= 5 and 1 <= rated["dnsmos_sig"] <= 5
        assert rated["versions"] == [("quality", "1:dnsmos-p835")]
    assert clean["dnsmos_ovrl"] - noisy["dnsmos_ovrl"] > 0.3
    assert clean["snr_db"] - noisy["snr_db"] > 10
    figures = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "snr_db")
    assert all(row[f] is None for row in (short, gated) for f in figures)

    assert not StageRunner(shard).run(Filter(FilterConfig()), "s1").skipped  # reads `quality`
    assert run_filter(shard, FilterConfig()) == [None, None, None, "audio_lang_undeclared"]
    between = (clean["dnsmos_ovrl"] + noisy["dnsmos_ovrl"]) / 2
    assert run_filter(shard, FilterConfig(min_dnsmos_ovrl=between))[:2] == [None, DNSMOS_LOW]
    snr_between = (clean["snr_db"] + noisy["snr_db"]) / 2
    assert run_filter(shard, FilterConfig(min_snr_db=snr_between))[:2] == [None, SNR_LOW]
    # the short row was not rated, so no quality rule judges it
    strict = FilterConfig(min_dnsmos_ovrl=5.0, min_snr_db=100.0)
    assert run_filter(shard, strict) == [DNSMOS_LOW, DNSMOS_LOW, None, "audio_lang_undeclared"]


def test_the_snr_alone_when_dnsmos_is_off(shard):
    table = Quality(QualityConfig(dnsmos=False)).run(ShardContext("s1", shard))
    assert table["dnsmos_ovrl"].null_count == 4
    assert table["snr_db"].null_count == 2
    assert table["versions"][0].as_py() == [("quality", "1:snr")]


def test_a_finished_quality_shard_is_skipped_and_a_changed_setting_redoes_it(shard):
    runner = StageRunner(shard)
    config = QualityConfig(dnsmos=False)
    assert not runner.run(Quality(config), "s1").skipped
    assert runner.run(Quality(config), "s1").skipped
    assert not runner.run(Quality(QualityConfig(dnsmos=False, min_duration_s=0.2)), "s1").skipped
    rows = ShardContext("s1", shard).read("quality")["snr_db"].to_pylist()
    assert rows[2] is not None  # the 0.3 s row is rated now


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"quality": {"min_duration_s": 0.1}}, "min_duration_s (0.1) is below 0.2 s"),
        ({"quality": {"max_windows": 0}}, "quality.max_windows: Input should be greater"),
        ({"filter": {"min_dnsmos_ovrl": 6}}, "filter.min_dnsmos_ovrl"),
        ({"filter": {"min_snr_db": "loud"}}, "filter.min_snr_db"),
        (
            {"quality": {"dnsmos": False}, "filter": {"min_dnsmos_ovrl": 3.0}},
            "quality.dnsmos is false: no row would be rated",
        ),
    ],
)
def test_quality_settings_out_of_range_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: ") as error:
        build_config(settings, "pipeline.yaml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_report_draws_a_quality_histogram_per_source(tmp_path):
    rows = [
        {"segment_id": f"{source}/a.wav#{i}", "recording_id": f"{source}/a.wav",
         "source": source, "license": "CC0-1.0", "offset": float(i), "duration": 2.0,
         "lang": "en", "dnsmos_ovrl": ovrl, "snr_db": snr,
         "drop_reason": None if ovrl > 2 else DNSMOS_LOW}
        for source, figures in (("radio", [(3.2, 25.0), (1.6, 3.0)]), ("lectures", [(3.9, 40.0)]))
        for i, (ovrl, snr) in enumerate(figures)
    ]  # fmt: skip
    (tmp_path / "shard").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST), tmp_path / "shard" / "s1.parquet")
    (tmp_path / "shards.json").write_text('["s1"]')
    folder = write_report(tmp_path)
    assert (folder / "quality.png").stat().st_size > 0
    markdown = (folder / "report.md").read_text()
    assert "![quality](quality.png)" in markdown
    table = markdown.split("## Audio quality per source")[1].split("##")[0]
    assert "| lectures | 1 | 3.90 | 3.90 | 40.00 | 40.00 |" in table
    assert "| radio | 2 |" in table


def test_every_rateable_row_of_the_demo_curation_carries_its_figures(curated):
    """The stage runs inside `vaglio curate`: each row long enough and in a declared language is
    rated, and SQL shows the figures."""
    workdir, _ = curated
    counts = run_query(
        workdir,
        "SELECT count(*) AS rateable, count(dnsmos_ovrl) AS rated, count(snr_db) AS measured, "
        "count(*) FILTER (dnsmos_ovrl BETWEEN 1 AND 5) AS in_range FROM segments_all "
        "WHERE duration >= 0.5 AND (gate_reason IS NULL) AND versions['quality'] = '1:dnsmos-p835'",
    ).to_pylist()[0]
    assert counts["rateable"] > 0
    assert counts["rated"] == counts["measured"] == counts["in_range"] == counts["rateable"]

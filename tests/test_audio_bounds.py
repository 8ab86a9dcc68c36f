"""Audio that lies about itself: a header that claims hours in a few kilobytes, a FLAC whose
middle frames are gone. A user curates them beside a good file and sees them quarantined with
the reason, the loss recorded in SQL, memory flat, and the good file kept."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
import yaml

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.demo_corpus import write_audio
from pipeline.query.sql import run_query


def wav_bytes(rate: int, pcm: bytes) -> bytes:
    """A 16-bit mono WAV whose header gives `rate`, whatever the samples are."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data"
    body += struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(len(t))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("liars")
    audio = root / "audio"
    audio.mkdir()
    write_audio(audio / "good.flac", noise(3.0))
    # 4 KB of samples whose header says 1 Hz: 2000 s at 16 kHz (the reported 160 KB one: 22 h).
    pcm = (np.random.default_rng(1).standard_normal(2000) * 3000).astype(np.int16).tobytes()
    (audio / "one_hertz.wav").write_bytes(wav_bytes(1, pcm))
    # 3 KB cut from the middle of a 10 s FLAC: FFmpeg resyncs and splices the rest together.
    write_audio(root / "whole.flac", noise(10.0, seed=2))
    data = (root / "whole.flac").read_bytes()
    middle = len(data) // 2
    (audio / "spliced.flac").write_bytes(data[:middle] + data[middle + 3000 :])
    source = {"name": "liars", "kind": "local", "path": "audio", "license": "CC0-1.0",
              "attribution": "test", "languages": ["en"]}  # fmt: skip
    (root / "catalog.yaml").write_text(yaml.safe_dump({"sources": [source]}))
    workdir = root / "work"
    # Peak memory of the whole run, in a process of its own.
    script = (
        "import resource, subprocess, sys;"
        "code = subprocess.run(sys.argv[1:]).returncode;"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    curate = [sys.executable, "-m", "pipeline.cli", "curate", str(root / "catalog.yaml")]
    done = subprocess.run(
        [sys.executable, "-c", script, *curate, "-w", str(workdir), "--engine", "threads"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024
    rows = run_query(
        workdir, "SELECT path, quarantine_reason, lost_share, duration FROM recordings"
    ).to_pylist()
    return {row["path"].rsplit("/", 1)[-1]: row for row in rows}, peak_mb


def test_a_header_that_claims_hours_in_kilobytes_is_quarantined_not_decoded(curated):
    rows, peak_mb = curated
    assert rows["one_hertz.wav"]["quarantine_reason"] == "sample rate 1 Hz: outside 4000-384000 Hz"
    assert rows["one_hertz.wav"]["duration"] is None  # nothing was decoded
    assert peak_mb < 1500, f"peak memory {peak_mb:.0f} MB"


def test_a_flac_that_lost_frames_is_quarantined_with_the_share_it_lost(curated):
    rows, _ = curated
    spliced = rows["spliced.flac"]
    assert 0.01 < spliced["lost_share"] < 0.1  # below the 10 % that counts as truncated
    assert spliced["quarantine_reason"].startswith("corrupt: ")
    assert "of the audio did not decode" in spliced["quarantine_reason"]
    good = rows["good.flac"]
    assert (good["quarantine_reason"], good["lost_share"]) == (None, 0.0)

"""Decoding odd inputs, and the batched VAD against silero's own `get_speech_timestamps`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from silero_vad import get_speech_timestamps, load_silero_vad

from pipeline.audio.decode import SAMPLE_RATE, AudioError, decode_file, from_flac, to_flac
from pipeline.audio.vad import SileroVad, VadConfig, chunk_regions, speech_regions
from pipeline.demo_corpus import compose, speak, write_audio


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    pieces = [
        speak("The bakery on the corner opens at seven every morning.", "en"),
        speak("Domani pomeriggio andiamo al mare con i nostri amici.", "it"),
        speak("Please leave your shoes by the door when you come in.", "en"),
    ]
    return compose(pieces, [1.2, 0.6], edge_s=0.8)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg", ".m4a"])
def test_every_container_decodes_to_16k_mono(tmp_path, speech, suffix):
    path = tmp_path / f"speech{suffix}"
    write_audio(path, np.stack([speech, speech], axis=1), sample_rate=SAMPLE_RATE)
    decoded = decode_file(path)
    assert decoded.channels_in == 2
    assert abs(decoded.duration - len(speech) / SAMPLE_RATE) < 0.1
    assert np.abs(decoded.samples).max() <= np.abs(speech).max() * 1.1  # no +3 dB downmix


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "unreadable"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "unreadable"),
        (b"\x00" * 999, "unreadable"),
    ],
)
def test_broken_bytes_give_a_quarantine_reason(tmp_path, content, reason):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason):
        decode_file(path)


def test_a_cut_wav_is_reported_as_truncated(tmp_path, speech):
    path = tmp_path / "cut.wav"
    write_audio(path, speech)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        decode_file(path)


def test_flac_storage_is_lossless_at_16_bit(speech):
    restored = from_flac(to_flac(speech))
    assert np.abs(restored - speech).max() < 1 / 32768 + 1e-6


def test_batched_vad_finds_the_same_speech_as_silero(speech):
    audios = [speech, speech[: len(speech) // 2], np.tile(speech, 5)]
    torch.set_num_threads(1)
    model = load_silero_vad(onnx=True)
    vad = SileroVad(VadConfig(piece_s=4.0))  # short pieces: the warm-up splice is exercised
    for audio, probs in zip(audios, vad.probabilities(audios)):
        ours = speech_regions(probs, vad.config, len(audio))
        theirs = get_speech_timestamps(
            torch.from_numpy(audio), model, return_seconds=True, time_resolution=3
        )
        assert len(ours) == len(theirs)
        for (start, end), region in zip(ours, theirs):
            # Exact away from splices; within a few 32 ms windows where a piece's warm-up ends.
            assert abs(start - region["start"]) < 0.1 and abs(end - region["end"]) < 0.1


def test_chunks_respect_the_maximum_and_cut_at_pauses():
    regions = [(0.0, 12.0), (12.5, 25.0), (25.4, 40.0), (45.0, 50.0), (51.0, 120.0)]
    chunks = chunk_regions(regions, max_chunk_s=30.0, merge_gap_s=3.0)
    assert all(end - start <= 30.0 + 1e-9 for start, end, _ in chunks)
    starts = [start for start, _, _ in chunks]
    assert 25.4 in starts and 45.0 in starts  # a cut at the pause, and after the long gap
    assert sum(speech for _, _, speech in chunks) == pytest.approx(
        sum(end - start for start, end in regions)
    )

"""Decode any container/codec to 16 kHz mono float32, and store audio as FLAC bytes.

Memory stays bounded whatever a header claims: a sample rate outside what real audio uses is
refused before decoding (a 160 KB WAV that says 1 Hz would be 22 h at 16 kHz), and decoding
stops once a file yields more audio than its bytes can hold (`MAX_SAMPLES_PER_BYTE`).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soundfile

SAMPLE_RATE = 16_000
TRUNCATION_TOLERANCE = 0.9  # decoded/declared duration below this means the file was cut
SAMPLE_RATES = (4_000, 384_000)  # telephone speech to studio masters, in Hz
# 16 kHz samples one byte of a file may decode to: 250 bytes a second (2 kbit/s), below the
# leanest speech codecs (Opus at 6 kbit/s gives 21), with room for long digital silence in FLAC.
MAX_SAMPLES_PER_BYTE = 64
# Containers whose header states the exact number of samples: what decodes short was lost.
_EXACT_LENGTH = ("wav", "flac")
_LIBSNDFILE = (".wav", ".flac", ".ogg")  # headers libsndfile reads; the rest go to PyAV
_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFCHR: "a device",
               stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}  # fmt: skip


class AudioError(Exception):
    """The file cannot be used as audio; the message is the quarantine reason."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    sample_rate_in: int
    channels_in: int
    lost_share: float = 0.0  # of the audio the header declares, what did not decode (corrupt)

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def sha256(self) -> str:
        """Checksum of the decoded samples, so re-encoded copies of one recording still match."""
        return hashlib.sha256(self.samples.tobytes()).hexdigest()


def decode_file(
    audio: Path | str | bytes, offset: float | None = None, duration: float | None = None
) -> DecodedAudio:
    """Decode, downmix and resample with FFmpeg (PyAV); raise AudioError on unusable input.

    `audio` is a file or its encoded bytes; `offset`/`duration` cut a window of it, seeking
    rather than decoding what comes before, so many windows of one long file stay cheap.
    """
    start = offset or 0.0
    try:
        _require_regular_file(audio)
        size = len(audio) if isinstance(audio, bytes) else Path(audio).stat().st_size
        most = size * MAX_SAMPLES_PER_BYTE
        with av.open(_readable(audio)) as container:
            if not container.streams.audio:
                raise AudioError("no audio stream")
            stream = container.streams.audio[0]
            rate_in, channels_in = stream.rate or 0, stream.channels or 0
            if not SAMPLE_RATES[0] <= rate_in <= SAMPLE_RATES[1]:
                low, high = SAMPLE_RATES
                raise AudioError(f"sample rate {rate_in} Hz: outside {low}-{high} Hz")
            declared = _declared_seconds(container, stream, audio)
            if declared * SAMPLE_RATE > most:
                claim = f"the header declares {declared:.0f} s in {size} bytes"
                raise AudioError(f"implausible: {claim}")
            if duration and declared and start + duration > declared + 0.05:
                window = f"{start:.2f}+{duration:.2f} s"
                raise AudioError(f"window beyond the end: {window} of a {declared:.2f} s file")
            samples, first = _decode_from(container, stream, start, duration, most)
            exact = container.format.name in _EXACT_LENGTH
    except AudioError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        detail = getattr(error, "strerror", None) or str(error)
        raise AudioError(f"unreadable: {detail}") from None
    samples = samples[max(0, round((start - first) * SAMPLE_RATE)) :]
    if duration:
        samples = samples[: round(duration * SAMPLE_RATE)]
    if len(samples) == 0:
        raise AudioError("empty: no audio samples")
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(f"not finite: {bad} samples are NaN or infinite")
    expected = duration or (declared - start if declared else 0.0)
    got = len(samples) / SAMPLE_RATE
    if expected and got < TRUNCATION_TOLERANCE * expected - 0.05:
        raise AudioError(f"truncated: decoded {got:.2f} s of {expected:.2f} s the header declares")
    # Resampling may round a few samples away; more than a millisecond missing was lost.
    lost = max(0.0, expected - got) if exact and expected - got > 0.001 else 0.0
    return DecodedAudio(samples, rate_in, channels_in, lost / expected if lost else 0.0)


def _require_regular_file(audio: Path | str | bytes) -> None:
    """Refuse a path that is not a regular file: reading a FIFO or a device may never end."""
    if isinstance(audio, bytes):
        return
    mode = os.stat(audio).st_mode
    if not stat.S_ISREG(mode):
        raise AudioError(f"not a regular file: {_FILE_KINDS.get(stat.S_IFMT(mode), 'unknown')}")


def _readable(audio: Path | str | bytes) -> str | io.BytesIO:
    return io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)


def _decode_from(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    start: float,
    duration: float | None,
    most: int,
) -> tuple[np.ndarray, float]:
    """(16 kHz mono samples from about `start`, the time of the first one); stops after the
    window. Seeking lands on a frame at or before `start`; the caller trims the rest. More
    than `most` samples is an AudioError, raised as soon as they are reached."""
    if start > 0 and stream.time_base is not None:
        container.seek(int(start / stream.time_base), stream=stream)
    # Resample only; channels are averaged here, since FFmpeg's downmix adds them at -3 dB
    # each and would raise the level of a stereo source.
    resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
    pieces, first, count = [], None, 0
    frames = container.decode(stream)
    while True:
        frame = next(frames, None)  # None at the end: it flushes the resampler
        time = frame.time if frame is not None else None
        if first is None and frame is not None:
            first = time or 0.0
        if duration and time is not None and time >= start + duration:
            frame = None  # past the window
        for out in resampler.resample(frame):
            pieces.append(out.to_ndarray().mean(axis=0))
            count += len(pieces[-1])
        if count > most:
            raise AudioError(f"implausible: decodes to more than {most / SAMPLE_RATE:.0f} s")
        if frame is None:
            break
    samples = np.concatenate(pieces) if pieces else np.zeros(0)
    return samples.astype(np.float32, copy=False), first or 0.0


def _declared_seconds(
    container: av.container.InputContainer, stream: av.AudioStream, audio: Path | str | bytes
) -> float:
    """The duration the file's header promises (FFmpeg caps a WAV's at what is present)."""
    if container.format.name == "wav":
        with _binary(audio) as header:
            return _wav_header_seconds(header)
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _binary(audio: Path | str | bytes) -> BinaryIO:
    return io.BytesIO(audio) if isinstance(audio, bytes) else Path(audio).open("rb")


def _wav_header_seconds(f: BinaryIO) -> float:
    """Duration from the RIFF `data` chunk size and the `fmt ` byte rate; 0.0 if unknown."""
    if f.read(4) != b"RIFF" or (f.read(4), f.read(4))[1] != b"WAVE":
        return 0.0
    byte_rate = 0
    while len(header := f.read(8)) == 8:
        chunk, size = header[:4], int.from_bytes(header[4:], "little")
        if chunk == b"fmt ":
            byte_rate = int.from_bytes(f.read(16)[8:12], "little")
            f.seek(size - 16 + size % 2, 1)
        elif chunk == b"data":
            # 0xFFFFFFFF marks a streamed WAV whose length was never written.
            return size / byte_rate if byte_rate and size != 0xFFFFFFFF else 0.0
        else:
            f.seek(size + size % 2, 1)
    return 0.0


def header_seconds(audio: Path | bytes) -> float | None:
    """Duration from a file's (or encoded bytes') header, or None when none can be read."""
    held = isinstance(audio, bytes)
    try:
        _require_regular_file(audio)
    except (AudioError, OSError):
        return None
    if held or audio.suffix.lower() in _LIBSNDFILE:
        try:
            return float(soundfile.info(io.BytesIO(audio) if held else str(audio)).duration)
        except (RuntimeError, soundfile.LibsndfileError):
            if not held:  # bytes carry no suffix: try FFmpeg's demuxers too
                return None
    try:
        with av.open(io.BytesIO(audio) if held else str(audio)) as container:
            return container.duration / av.time_base if container.duration else None
    except (av.error.FFmpegError, OSError):
        return None


def to_flac(samples: np.ndarray) -> bytes:
    """Lossless 16-bit FLAC at SAMPLE_RATE: about half the size of PCM, readable everywhere."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def from_flac(data: bytes) -> np.ndarray:
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    if rate != SAMPLE_RATE:
        raise AudioError(f"expected {SAMPLE_RATE} Hz audio, found {rate} Hz")
    return samples

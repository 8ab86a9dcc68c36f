"""Decode any container/codec to 16 kHz mono float32, and store audio as FLAC bytes."""

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
        with av.open(_readable(audio)) as container:
            if not container.streams.audio:
                raise AudioError("no audio stream")
            stream = container.streams.audio[0]
            declared = _declared_seconds(container, stream, audio)
            if duration and declared and start + duration > declared + 0.05:
                window = f"{start:.2f}+{duration:.2f} s"
                raise AudioError(f"window beyond the end: {window} of a {declared:.2f} s file")
            samples, first = _decode_from(container, stream, start, duration)
            rate_in, channels_in = stream.rate or 0, stream.channels or 0
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
    decoded = DecodedAudio(samples, rate_in, channels_in)
    expected = duration or (declared - start if declared else 0.0)
    if expected and decoded.duration < TRUNCATION_TOLERANCE * expected - 0.05:
        raise AudioError(
            f"truncated: decoded {decoded.duration:.2f} s of {expected:.2f} s the header declares"
        )
    return decoded


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
) -> tuple[np.ndarray, float]:
    """(16 kHz mono samples from about `start`, the time of the first one); stops after the
    window. Seeking lands on a frame at or before `start`; the caller trims the rest."""
    if start > 0 and stream.time_base is not None:
        container.seek(int(start / stream.time_base), stream=stream)
    # Resample only; channels are averaged here, since FFmpeg's downmix adds them at -3 dB
    # each and would raise the level of a stereo source.
    resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
    pieces, first = [], None
    for frame in container.decode(stream):
        if first is None:
            first = frame.time or 0.0
        if duration and frame.time is not None and frame.time >= start + duration:
            break
        pieces += [out.to_ndarray().mean(axis=0) for out in resampler.resample(frame)]
    pieces += [out.to_ndarray().mean(axis=0) for out in resampler.resample(None)]
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

"""Resemblyzer's pretrained voice encoder, run by onnxruntime from a graph built here.

The weights (`pretrained.pt`, 17 MB) ship inside the `Resemblyzer` 0.1.4 wheel on PyPI, whose
code and weights are Apache-2.0 ("Copyright 2019 Resemble.AI"). The model is a GE2E speaker
encoder (Wan et al. 2018, "Generalized End-to-End Loss for Speaker Verification"): three LSTM
layers over 40 mel bands, a linear layer and a ReLU, giving an L2-normed 256-dimensional voice
embedding per 1.6 s window.

The package itself is never installed: it requires `webrtcvad` (a C extension built from a
source archive), the `typing` backport and `librosa` (with numba and scipy), none of which the
curation needs. So the wheel is only downloaded and the weights read out of it, checksum
verified (`WheelFile`), and its checkpoint is loaded with `weights_only=True` (no pickled code
runs). The same network is then written as an ONNX graph (three LSTM layers, the linear layer)
and run by onnxruntime, with its threads told not to spin: on one thread it and `torch.nn.LSTM`
take the same CPU time per window, but on a busy machine torch's OpenMP threads spin while they
wait for each other, and on every core of a loaded 2-core box torch's LSTM took over 20 times
the CPU time (`bench/speaker_counts.py`). The mel features are computed with numpy exactly as
Resemblyzer computes them with librosa (power mel spectrogram, Slaney scale and norm, 25 ms Hann
windows every 10 ms, no log), and its silence trimming with webrtcvad is replaced by the Silero
speech regions that the segment stage already found. On the seven real clips, the embeddings
match Resemblyzer's own `embed_utterance` to a cosine of 0.99999.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated

import numpy as np
from pydantic import Field

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.offline_files import WheelFile, WheelPart
from pipeline.validation import Count

RESEMBLYZER = WheelFile(
    what="Resemblyzer's voice encoder",
    name="pretrained.pt",
    parts=(
        WheelPart(
            requirement="Resemblyzer==0.1.4",
            wheel="Resemblyzer-0.1.4-py3-none-any.whl",
            member="resemblyzer/pretrained.pt",
        ),
    ),
    sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
    fetcher="pipeline.speakers.encoder",
)
RESEMBLYZER_LICENSE = "Apache-2.0"
ENCODER_MODEL = "resemblyzer-0.1.4"
"""What the `versions` column records as the speaker model."""

EMBEDDING_SIZE = 256
N_FFT = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
N_MELS = 40
WINDOW_FRAMES = 160  # the 1.6 s window the encoder was trained on
TARGET_DBFS = -30.0  # quiet speech is raised to this level before the features, as Resemblyzer


WindowRate = Annotated[float, Field(strict=True, ge=0.625, le=100)]
"""Windows started per second of speech: at least one per 1.6 s, so that they cover it all."""


@dataclass(frozen=True)
class EncoderConfig:
    windows_per_s: WindowRate = 1.3  # Resemblyzer's rate: 1.6 s windows every ~0.77 s
    batch_windows: Count = 256  # windows per model call


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear to 1 kHz, logarithmic above (librosa's default, htk=False)."""
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@cache
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters, each normalised to unit area (Slaney)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _slaney_hz(np.linspace(0.0, _slaney_mel(np.array(SAMPLE_RATE / 2.0)), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return filters.astype(np.float32)


def mel_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) power mel spectrogram, one frame per 10 ms, centred windows."""
    padded = np.pad(samples.astype(np.float32), N_FFT // 2)
    count = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded, (count, N_FFT), (padded.strides[0] * HOP, padded.strides[0]), writeable=False
    )
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as scipy's "hann"
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (power @ mel_filters().T).astype(np.float32)


def raise_to_level(samples: np.ndarray) -> np.ndarray:
    """Quiet speech raised to TARGET_DBFS; louder speech is left alone (Resemblyzer's rule)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    if rms <= 0.0:
        return samples
    gain_db = TARGET_DBFS - 20 * np.log10(rms)
    return samples * np.float32(10 ** (gain_db / 20)) if gain_db > 0 else samples


def window_starts(n_samples: int, windows_per_s: float) -> list[int]:
    """First frame of each 1.6 s window over `n_samples` samples (Resemblyzer's partials): the
    last window is kept if at least 3/4 of it holds audio, and there is always one."""
    step = max(1, round(SAMPLE_RATE / windows_per_s / HOP))
    n_frames = -(-(n_samples + 1) // HOP)
    starts = list(range(0, max(1, n_frames - WINDOW_FRAMES + step + 1), step))
    if len(starts) > 1 and (n_samples - starts[-1] * HOP) / (WINDOW_FRAMES * HOP) < 0.75:
        starts.pop()
    return starts


def _onnx_gates(matrix: np.ndarray) -> np.ndarray:
    """PyTorch stacks an LSTM's gate weights as (input, forget, cell, output); ONNX as
    (input, output, forget, cell)."""
    i, f, c, o = np.split(matrix, 4)
    return np.concatenate([i, o, f, c])


def encoder_graph(state: dict[str, np.ndarray]) -> bytes:
    """The voice encoder as a serialised ONNX model: mels (windows, frames, N_MELS) in, the
    unnormed embeddings (windows, EMBEDDING_SIZE) out."""
    from onnx import TensorProto, helper, numpy_helper

    weights, nodes = [], [helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2])]
    for layer in range(3):
        w, r = (f"lstm.weight_{kind}_l{layer}" for kind in ("ih", "hh"))
        biases = [_onnx_gates(state[f"lstm.bias_{kind}_l{layer}"]) for kind in ("ih", "hh")]
        weights += [
            numpy_helper.from_array(_onnx_gates(state[w])[None], f"W{layer}"),
            numpy_helper.from_array(_onnx_gates(state[r])[None], f"R{layer}"),
            numpy_helper.from_array(np.concatenate(biases)[None], f"B{layer}"),
        ]
        nodes += [
            helper.make_node(
                "LSTM",
                [f"x{layer}", f"W{layer}", f"R{layer}", f"B{layer}"],
                [f"y{layer}", f"h{layer}"],
                hidden_size=EMBEDDING_SIZE,
            ),
            helper.make_node("Squeeze", [f"y{layer}", "axis1"], [f"x{layer + 1}"]),
        ]
    weights += [
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(state["linear.weight"], "linear_w"),
        numpy_helper.from_array(state["linear.bias"], "linear_b"),
    ]
    nodes += [
        helper.make_node("Squeeze", ["h2", "axis0"], ["last"]),
        helper.make_node("Gemm", ["last", "linear_w", "linear_b"], ["linear"], transB=1),
        helper.make_node("Relu", ["linear"], ["voices"]),
    ]
    weights.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    graph = helper.make_graph(
        nodes,
        "resemblyzer_voice_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, [None, None, N_MELS])],
        [helper.make_tensor_value_info("voices", TensorProto.FLOAT, [None, EMBEDDING_SIZE])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def resemblyzer_weights() -> dict[str, np.ndarray]:
    """The encoder's tensors from the verified checkpoint (the only use of torch here)."""
    import torch

    checkpoint = torch.load(RESEMBLYZER.path(), map_location="cpu", weights_only=True)
    return {
        name: tensor.numpy()
        for name, tensor in checkpoint["model_state"].items()
        if name.startswith(("lstm.", "linear."))
    }


class VoiceEncoder:
    """Embeds speech: one L2-normed 256-d vector per piece of audio (the normed mean of its
    windows' embeddings)."""

    def __init__(self, config: EncoderConfig = EncoderConfig(), threads: int = 0):
        """`threads`: onnxruntime's threads for one call (0: one per core)."""
        import onnxruntime

        self.config = config
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # Between calls its threads would spin on cores that other work on the machine needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            encoder_graph(resemblyzer_weights()), options, providers=["CPUExecutionProvider"]
        )

    def embed_windows(self, mels: np.ndarray) -> np.ndarray:
        """L2-normed embeddings of a batch of (windows, WINDOW_FRAMES, N_MELS) features."""
        (raw,) = self.session.run(None, {"mels": mels})
        return raw / np.linalg.norm(raw, axis=1, keepdims=True)

    def embed(self, pieces: list[np.ndarray]) -> np.ndarray:
        """(len(pieces), 256) float32; windows of every piece share model calls. A piece with
        no samples gets a row of NaN."""
        windows, owners = [], []
        for index, samples in enumerate(pieces):
            if not len(samples):
                continue
            starts = window_starts(len(samples), self.config.windows_per_s)
            needed = (starts[-1] + WINDOW_FRAMES - 1) * HOP  # frames past the end see zeros
            padded = np.pad(raise_to_level(samples), (0, max(0, needed - len(samples))))
            mels = mel_frames(padded)
            windows.extend(mels[s : s + WINDOW_FRAMES] for s in starts)
            owners.extend([index] * len(starts))
        sums = np.zeros((len(pieces), EMBEDDING_SIZE), dtype=np.float64)
        step = self.config.batch_windows
        for first in range(0, len(windows), step):
            batch = np.stack(windows[first : first + step])
            np.add.at(sums, np.array(owners[first : first + step]), self.embed_windows(batch))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sums / norms).astype(np.float32)


if __name__ == "__main__":
    RESEMBLYZER.download()
    print(f"{RESEMBLYZER.path()} ({RESEMBLYZER_LICENSE})")

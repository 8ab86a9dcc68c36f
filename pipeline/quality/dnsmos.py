"""DNSMOS P.835: the speech (SIG), background (BAK) and overall (OVRL) ratings of ITU-T P.835,
1 to 5, predicted from the audio alone by Microsoft's model, run here with onnxruntime.

The model (C. K. A. Reddy, V. Gopal, R. Cutler, "DNSMOS P.835", ICASSP 2022) hears 9.01 s of
16 kHz audio at a time. Its file ships in the `speechmos` wheel on PyPI (MIT licence, published
by Microsoft's challenge organisers) and is byte for byte `DNSMOS/DNSMOS/sig_bak_ovr.onnx` of
github.com/microsoft/DNS-Challenge (MIT for code, CC-BY-4.0 for other content); its sha256 is
checked before it is loaded. Nothing else of `speechmos` is used: its module imports librosa
and rates one clip per call.

What the network outputs is put on the P.835 scale by a second-degree polynomial per rating,
which the authors fitted to listening tests (the coefficients they publish with the model).

A segment is rated on whole windows, as the model was trained: one shorter than a window is
repeated end to end until it fills one (as the authors do); a longer one is cut into up to
`max_windows` equal parts, each rated on the window centred on it, and the ratings averaged.
The authors' script slides the window by 1 s, rating every second of a long clip about nine
times; the network costs about 0.4 core-seconds per window on an AMD EPYC core, so here a long
segment pays once per window at most (`bench/quality_signals.py`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import onnxruntime

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.offline_files import sha256_of

MODEL_PACKAGE = "speechmos"
MODEL_FILE = Path("dnsmos_models") / "sig_bak_ovr.onnx"
MODEL_SHA256 = "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd"
MODEL_TAG = "dnsmos-p835"
"""What the `versions` column records for the model."""

WINDOW = round(9.01 * SAMPLE_RATE)
"""Samples the model hears at once (144 160): its input has exactly this length."""

RATINGS = ("sig", "bak", "ovrl")

# Per rating (rows in the order of RATINGS and of the model's outputs), the coefficients of
# x², x and 1 that map the network's output x onto the P.835 scale: the fit the authors publish
# with the model (the general model, not the personalised one).
P835_FIT = np.array(
    [
        [-0.08397278, 1.22083953, 0.0052439],
        [-0.13166888, 1.60915514, -0.39604546],
        [-0.06766283, 1.11546468, 0.04602535],
    ]
)


def dnsmos_model_path() -> Path:
    """The DNSMOS P.835 ONNX file inside the installed `speechmos` package, checked by sha256.

    Found without importing the package (nothing of it runs)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"DNSMOS needs the PyPI package {MODEL_PACKAGE} (it ships the model): "
            "run `make setup` or `pip install vaglio`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    found = sha256_of(path) if path.is_file() else "no file"
    if found != MODEL_SHA256:
        raise RuntimeError(
            f"{path}: DNSMOS model checksum mismatch: got {found}, expected {MODEL_SHA256}; "
            f"reinstall {MODEL_PACKAGE}"
        )
    return path


def on_p835_scale(raw: np.ndarray) -> np.ndarray:
    """The network's outputs, shape (n, 3), as SIG, BAK and OVRL ratings on the P.835 scale."""
    squared, linear, constant = P835_FIT.T
    return (squared * raw + linear) * raw + constant


def windows(samples: np.ndarray, most: int) -> list[np.ndarray]:
    """The model inputs that rate one segment: the segment repeated to fill one window if it is
    shorter than one, else up to `most` windows, each centred on one of as many equal parts."""
    if len(samples) == 0:
        raise ValueError("a segment of no samples cannot be rated")
    if len(samples) <= WINDOW:
        return [np.resize(samples, WINDOW)]
    count = min(most, -(-len(samples) // WINDOW))
    centres = (np.arange(count) + 0.5) * len(samples) / count
    starts = np.clip(np.round(centres - WINDOW / 2), 0, len(samples) - WINDOW).astype(int)
    return [samples[start : start + WINDOW] for start in starts]


class Dnsmos:
    """DNSMOS P.835 ratings of many segments, their windows batched across segments.

    A window's activations take about 150 MB, so a batch is kept small. onnxruntime's memory
    arena keeps them between calls: the peak stays that of one batch, and rating costs 15 %
    less CPU than allocating each call afresh (one window a call: 0.37 against 0.43 CPU s a
    window, 286 against 324 MB peak for two a call without the arena; AMD EPYC, one thread).
    Batching saves call overhead, not arithmetic (the convolutions dominate either way). One
    session serves every thread.
    """

    def __init__(self, threads: int = 1, batch_size: int = 1, max_windows: int = 1):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(dnsmos_model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.batch_size = batch_size
        self.max_windows = max_windows

    def rate(self, segments: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """(SIG, BAK, OVRL) of each segment, in order, as each is done: segments are read one
        at a time and at most one batch of windows is held."""
        tagged = (
            (number, window)
            for number, samples in enumerate(segments)
            for window in windows(samples, self.max_windows)
        )
        current, total, count = 0, np.zeros(len(RATINGS)), 0
        while batch := list(islice(tagged, self.batch_size)):
            inputs = np.stack([window for _, window in batch]).astype(np.float32, copy=False)
            (raw,) = self.session.run(None, {self.input: inputs})
            for (number, _), ratings in zip(batch, on_p835_scale(raw.astype(np.float64))):
                if number != current:  # every segment has a window, so this is the next one
                    yield total / count
                    current, total, count = number, np.zeros(len(RATINGS)), 0
                total += ratings
                count += 1
        if count:
            yield total / count

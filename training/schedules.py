"""Learning-rate warmups of "The Warmup Dilemma" (arXiv 2505.23420), each followed by the
same inverse-square-root decay η·sqrt(w/i) once the w warmup steps are over.

`i` counts optimizer updates from 1: the first update already moves the weights (a rate of 0
at i = 0 would waste it). Every schedule reaches the peak η exactly at i = w, so they differ
only in how they get there:

- linear       η·i/w
- owsm         piecewise linear: 0 → η′ at w′, then η′ → η at w (OWSM, FAMA-medium)
- exponential  η·(e^{αi/w} − 1)/(e^α − 1)
- polynomial   η·(i/w)^α
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from training.config import SCHEDULE_NAMES, ScheduleConfig


def _linear(i: float, peak: float, s: ScheduleConfig) -> float:
    return peak * i / s.warmup_steps


def _owsm(i: float, peak: float, s: ScheduleConfig) -> float:
    if i <= s.owsm_step:
        return s.owsm_lr * i / s.owsm_step
    share = (i - s.owsm_step) / (s.warmup_steps - s.owsm_step)
    return s.owsm_lr + (peak - s.owsm_lr) * share


def _exponential(i: float, peak: float, s: ScheduleConfig) -> float:
    return peak * math.expm1(s.alpha * i / s.warmup_steps) / math.expm1(s.alpha)


def _polynomial(i: float, peak: float, s: ScheduleConfig) -> float:
    return peak * (i / s.warmup_steps) ** s.alpha


WARMUPS: dict[str, Callable[[float, float, ScheduleConfig], float]] = {
    "linear": _linear,
    "owsm": _owsm,
    "exponential": _exponential,
    "polynomial": _polynomial,
}
assert tuple(WARMUPS) == SCHEDULE_NAMES


def learning_rate(step: int, peak: float, schedule: ScheduleConfig) -> float:
    """The rate of update number `step` (from 1) under `schedule` with peak `peak`."""
    if step <= 0:
        return 0.0
    if step <= schedule.warmup_steps:
        return WARMUPS[schedule.name](step, peak, schedule)
    return peak * math.sqrt(schedule.warmup_steps / step)


def lr_factor(peak: float, schedule: ScheduleConfig) -> Callable[[int], float]:
    """For torch's LambdaLR, which counts from 0 and multiplies the peak rate."""
    return lambda index: learning_rate(index + 1, peak, schedule) / peak


def plot_schedules(peak: float, schedule: ScheduleConfig, steps: int, path: Path) -> Path:
    """A PNG of every named warmup with this config's peak and warmup, its own one in bold."""
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(1, steps + 1, max(1, steps // 2000)))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name in SCHEDULE_NAMES:
        variant = dataclasses.replace(schedule, name=name)
        chosen = name == schedule.name
        axes.plot(
            xs,
            [learning_rate(x, peak, variant) for x in xs],
            label=name,
            linewidth=2.5 if chosen else 1.0,
        )
    axes.axvline(schedule.warmup_steps, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("update")
    axes.set_ylabel("learning rate")
    axes.set_title(
        f"warmup {schedule.warmup_steps} steps to {peak:g}, then η·sqrt(w/i); bold: {schedule.name}"
    )
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

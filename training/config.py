"""A training config: a preset's name plus overrides, checked before anything heavy loads.

The presets are data (`training/presets/*.yaml`) laid over `base.yaml`, which names every
setting there is; a user's YAML is laid over the preset. A key that `base.yaml` does not
name, a value of the wrong type or out of its range (`pipeline.validation`: NaN never passes)
is refused with one line naming the file and the key, so a typo never trains a model for a
day with a default nobody meant, and `stage1.max_steps: -5` never reaches the trainer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from pipeline.strict_yaml import StrictYamlError, read_yaml
from pipeline.validation import (
    CONFIG_RULES,
    Count,
    CountOrZero,
    NonNegative,
    Positive,
    PositiveSeconds,
    Share,
    first_error,
)

PRESETS = Path(__file__).resolve().parent / "presets"
ScheduleName = Literal["linear", "owsm", "exponential", "polynomial"]
SCHEDULE_NAMES = get_args(ScheduleName)
Fraction = Annotated[float, Field(strict=True, ge=0, lt=1)]  # dropout, smoothing, Adam's betas
SPLITS = ("train", "dev", "test")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key."""


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml") if p.stem != "base")


@dataclass(frozen=True)
class ModelConfig:
    d_model: Count
    encoder_layers: Count
    decoder_layers: Count
    ffn_dim: Count
    heads: Count
    inter_ctc_layer: Count
    conv_kernel: Count
    dropout: Fraction
    n_mels: Count
    spec_augment: bool

    def __post_init__(self) -> None:
        if self.ffn_dim % self.d_model:
            raise ValueError(f"ffn_dim must be a multiple of d_model ({self.d_model})")
        if self.d_model % self.heads:
            raise ValueError(f"heads must divide d_model ({self.d_model})")
        if self.inter_ctc_layer > self.encoder_layers:
            raise ValueError(f"inter_ctc_layer must be between 1 and {self.encoder_layers}")


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: Count


@dataclass(frozen=True)
class DataConfig:
    split: dict[str, Share]
    batch_seconds: PositiveSeconds
    max_batch_size: Count
    max_duration: PositiveSeconds
    shuffle_buffer: Count
    bucket: bool
    num_workers: CountOrZero
    policy: str | None

    def __post_init__(self) -> None:
        if set(self.split) != set(SPLITS):
            raise ValueError(f"split must give exactly {', '.join(SPLITS)}")
        if not math.isclose(sum(self.split.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"split ratios must be non-negative and sum to 1, not {self.split}")


@dataclass(frozen=True)
class LossConfig:
    ctc_inter: NonNegative
    ce: NonNegative
    ctc_top: NonNegative
    label_smoothing: Fraction


@dataclass(frozen=True)
class OptimConfig:
    lr: Positive
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)]
    weight_decay: NonNegative
    clip: NonNegative


@dataclass(frozen=True)
class ScheduleConfig:
    name: ScheduleName
    warmup_steps: Count
    owsm_lr: Positive
    owsm_step: CountOrZero
    alpha: Positive

    def __post_init__(self) -> None:
        if self.name == "owsm" and not 0 < self.owsm_step < self.warmup_steps:
            raise ValueError("owsm_step must lie between 0 and warmup_steps")


@dataclass(frozen=True)
class Stage1Config:
    max_steps: Count


@dataclass(frozen=True)
class Stage2Config:
    max_steps: CountOrZero  # 0: no ASR+ST stage
    p_asr: Share


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: Count
    keep_last: Count
    average_last: Count

    def __post_init__(self) -> None:
        if self.average_last > self.keep_last:
            raise ValueError(
                f"average_last ({self.average_last}) must not exceed keep_last "
                f"({self.keep_last}): only the last keep_last checkpoints are kept to average"
            )


@dataclass(frozen=True)
class ValidationConfig:
    every_steps: Count
    batches: Count


@dataclass(frozen=True)
class DecodingConfig:
    beam: Count  # 1 = greedy
    max_tokens: Count
    length_penalty: NonNegative  # beam: scores divided by ((5 + length) / 6) ** this


@dataclass(frozen=True)
class TrainerConfig:
    accelerator: Literal["cpu", "gpu", "auto"]
    devices: Count
    num_nodes: Count
    precision: str  # `32` in YAML is a number: TrainConfig reads numbers as strings
    seed: CountOrZero
    accumulate_grad_batches: Count
    prepare_timeout: PositiveSeconds
    trace: bool


@dataclass(frozen=True)
class TrainConfig:
    __pydantic_config__ = CONFIG_RULES | ConfigDict(coerce_numbers_to_str=True)

    preset: str
    model: ModelConfig
    tokenizer: TokenizerConfig
    data: DataConfig
    loss: LossConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    stage1: Stage1Config
    stage2: Stage2Config
    checkpoint: CheckpointConfig
    validation: ValidationConfig
    decoding: DecodingConfig
    trainer: TrainerConfig

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as a resolved YAML would hold it (the preset's name included)."""
        out: dict[str, Any] = {"preset": self.preset}
        for f in fields(self)[1:]:
            section = getattr(self, f.name)
            out[f.name] = {g.name: copy.deepcopy(getattr(section, g.name)) for g in fields(section)}
        return out


_TRAIN = TypeAdapter(TrainConfig)


def _read_yaml(path: Path) -> dict:
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except StrictYamlError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings, not {type(data).__name__}")
    return data


def _overlay(base: dict, override: dict, where: str, origin: str) -> dict:
    """`override` laid over `base`; a key `base` lacks is an error naming it."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{where}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"{origin}: unknown key '{name}' (known here: {known})")
        if isinstance(base[key], dict) and key != "split":
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{name}' must be a mapping")
            merged[key] = _overlay(base[key], value, f"{name}.", origin)
        else:
            merged[key] = value
    return merged


def build_config(settings: dict, origin: str = "config") -> TrainConfig:
    """A checked config from a mapping with `preset:` and overrides."""
    settings = dict(settings)
    preset = settings.pop("preset", None)
    if preset not in preset_names():
        raise ConfigError(
            f"{origin}: 'preset' must be one of {', '.join(preset_names())}, not {preset!r}"
        )
    base = _read_yaml(PRESETS / "base.yaml")
    merged = _overlay(base, _read_yaml(PRESETS / f"{preset}.yaml"), "", f"preset {preset}")
    merged = _overlay(merged, settings, "", origin)
    try:
        return _TRAIN.validate_python({"preset": preset, **merged})
    except ValidationError as error:
        raise ConfigError(f"{origin}: {first_error(error, TrainConfig)}") from None


def load_config(path: Path | str) -> TrainConfig:
    """The checked config in the YAML file at `path`."""
    path = Path(path)
    return build_config(_read_yaml(path), str(path))


def write_config(config: TrainConfig, path: Path) -> None:
    """Written under a temporary name and renamed: another node never reads half of it."""
    from pipeline.run.runner import atomic_write_text

    atomic_write_text(yaml.safe_dump(config.as_dict(), sort_keys=False), path)

"""A training config: a preset's name plus overrides, checked before anything heavy loads.

The presets are data (`training/presets/*.yaml`) laid over `base.yaml`, which names every
setting there is; a user's YAML is laid over the preset. A key that `base.yaml` does not
name, or a value of the wrong type, is refused with one line naming the file and the key,
so a typo never trains a model for a day with a default nobody meant.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from pipeline.strict_yaml import StrictYamlError, read_yaml

PRESETS = Path(__file__).resolve().parent / "presets"
SCHEDULE_NAMES = ("linear", "owsm", "exponential", "polynomial")
SPLITS = ("train", "dev", "test")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key."""


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml") if p.stem != "base")


@dataclass(frozen=True)
class ModelConfig:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    ffn_dim: int
    heads: int
    inter_ctc_layer: int
    conv_kernel: int
    dropout: float
    n_mels: int
    spec_augment: bool


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int


@dataclass(frozen=True)
class DataConfig:
    split: dict
    batch_seconds: float
    max_batch_size: int
    max_duration: float
    shuffle_buffer: int
    num_workers: int
    policy: str | None


@dataclass(frozen=True)
class LossConfig:
    ctc_inter: float
    ce: float
    ctc_top: float
    label_smoothing: float


@dataclass(frozen=True)
class OptimConfig:
    lr: float
    betas: list
    weight_decay: float
    clip: float


@dataclass(frozen=True)
class ScheduleConfig:
    name: str
    warmup_steps: int
    owsm_lr: float
    owsm_step: int
    alpha: float


@dataclass(frozen=True)
class Stage1Config:
    max_steps: int


@dataclass(frozen=True)
class Stage2Config:
    max_steps: int
    p_asr: float


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: int
    keep_last: int
    average_last: int


@dataclass(frozen=True)
class ValidationConfig:
    every_steps: int
    batches: int


@dataclass(frozen=True)
class DecodingConfig:
    beam: int
    max_tokens: int


@dataclass(frozen=True)
class TrainerConfig:
    accelerator: str
    devices: int
    num_nodes: int
    precision: str
    seed: int


@dataclass(frozen=True)
class TrainConfig:
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


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict, "list": list}


def _typed(value: Any, annotation: str, name: str, origin: str) -> Any:
    """`value` as the field's type, or a ConfigError naming the key."""
    if value is None and annotation.endswith("| None"):
        return None
    wanted = _TYPES[annotation.removesuffix(" | None")]
    ok = (
        (wanted is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (wanted is int and isinstance(value, int) and not isinstance(value, bool))
        or (wanted not in (int, float) and isinstance(value, wanted))
    )
    if wanted is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # precision: 32
    if not ok:
        raise ConfigError(f"{origin}: '{name}' must be {wanted.__name__}, not {value!r}")
    return float(value) if wanted is float else value


def _check(config: TrainConfig, origin: str) -> None:
    """Values that have the right type but cannot work."""

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{origin}: '{key}' {why}")

    m = config.model
    for key in ("d_model", "encoder_layers", "decoder_layers", "ffn_dim", "heads", "n_mels"):
        if getattr(m, key) < 1:
            raise bad(f"model.{key}", "must be at least 1")
    if m.ffn_dim % m.d_model:
        raise bad("model.ffn_dim", f"must be a multiple of model.d_model ({m.d_model})")
    if m.d_model % m.heads:
        raise bad("model.heads", f"must divide model.d_model ({m.d_model})")
    if not 1 <= m.inter_ctc_layer <= m.encoder_layers:
        raise bad("model.inter_ctc_layer", f"must be between 1 and {m.encoder_layers}")
    split = config.data.split
    if set(split) != set(SPLITS):
        raise bad("data.split", f"must give exactly {', '.join(SPLITS)}")
    ratios = list(split.values())
    if any(not isinstance(r, int | float) or r < 0 for r in ratios) or not math.isclose(
        sum(ratios), 1.0, abs_tol=1e-6
    ):
        raise bad("data.split", f"ratios must be non-negative and sum to 1, not {split}")
    if config.schedule.name not in SCHEDULE_NAMES:
        raise bad("schedule.name", f"must be one of {', '.join(SCHEDULE_NAMES)}")
    s = config.schedule
    if s.warmup_steps < 1:
        raise bad("schedule.warmup_steps", "must be at least 1")
    if s.name == "owsm" and not 0 < s.owsm_step < s.warmup_steps:
        raise bad("schedule.owsm_step", "must lie between 0 and schedule.warmup_steps")
    if not 0.0 <= config.stage2.p_asr <= 1.0:
        raise bad("stage2.p_asr", "must be a probability")
    if config.decoding.beam < 1:
        raise bad("decoding.beam", "must be at least 1 (1 = greedy)")
    if len(config.optim.betas) != 2:
        raise bad("optim.betas", "must be two numbers")
    if config.trainer.accelerator not in ("cpu", "gpu", "auto"):
        raise bad("trainer.accelerator", "must be cpu, gpu or auto")
    for key in (
        "checkpoint.every_steps",
        "checkpoint.keep_last",
        "checkpoint.average_last",
        "validation.every_steps",
        "trainer.devices",
        "trainer.num_nodes",
    ):
        section, name = key.split(".")
        if getattr(getattr(config, section), name) < 1:
            raise bad(key, "must be at least 1")


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
    sections = {}
    for f in fields(TrainConfig)[1:]:
        section = globals()[f.type]  # annotations are strings here
        kinds = {g.name: g.type for g in fields(section)}
        values = {
            k: _typed(v, kinds[k], f"{f.name}.{k}", origin) for k, v in merged[f.name].items()
        }
        sections[f.name] = section(**values)
    config = TrainConfig(preset=preset, **sections)
    _check(config, origin)
    return config


def load_config(path: Path | str) -> TrainConfig:
    """The checked config in the YAML file at `path`."""
    path = Path(path)
    return build_config(_read_yaml(path), str(path))


def write_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.as_dict(), sort_keys=False), encoding="utf-8")

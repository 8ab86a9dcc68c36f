"""The curation config: one frozen dataclass per stage, read from YAML with checked keys.

A config file reads top to bottom like the pipeline; every key is optional and defaults to
the reference values, e.g.

    files_per_shard: 4
    segment: {max_chunk_s: 30, vad: {threshold: 0.5}}
    pass1: {asr: {model: whisper-base, batch_size: 8}, min_lang_prob: 0.7}
    pass2: {asr: {backend: nemo, model: nvidia/parakeet-tdt-0.6b-v2}, utterances: {max_s: 40}}
    filter: {max_pass_wer: 0.5}
    punctuate: {llm: {backend: openai, model: Qwen/Qwen2.5-7B-Instruct}}
    translate: {llm: {backend: vllm}, targets: {"*": [en], open-radio: [en, de]}}
    resources: {pass1: {num_gpus: 1}, pass2: {num_gpus: 1}}
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.stages.filter import FilterConfig
from pipeline.stages.pass1 import Pass1Config
from pipeline.stages.pass2 import Pass2Config
from pipeline.stages.punctuate import PunctuateConfig
from pipeline.stages.segment import SegmentConfig
from pipeline.stages.shard import ShardConfig
from pipeline.stages.standardise import StandardiseConfig
from pipeline.stages.translate import TranslateConfig
from pipeline.strict_yaml import StrictYamlError, read_yaml


class ConfigError(ValueError):
    """A config file that names an unknown key or gives a value of the wrong type."""


@dataclass(frozen=True)
class StageResources:
    """What one shard task of a stage reserves: Ray schedules by it (`--engine ray`), and a
    stage with `num_gpus > 0` takes a slot of the Prefect `gpu` concurrency limit."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self):
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError("num_cpus and num_gpus cannot be negative")


@dataclass(frozen=True)
class CurateConfig:
    files_per_shard: int = 4
    license_policy: str | None = None  # a policy YAML that replaces licenses/policy.yaml
    workers: int = 2  # shards of CPU stages processed at once
    standardise: StandardiseConfig = field(default_factory=StandardiseConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pass1: Pass1Config = field(default_factory=Pass1Config)
    pass2: Pass2Config = field(default_factory=Pass2Config)
    filter: FilterConfig = field(default_factory=FilterConfig)
    punctuate: PunctuateConfig = field(default_factory=PunctuateConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    resources: dict[str, StageResources] = field(default_factory=dict)  # by stage name

    def __post_init__(self):
        hints = typing.get_type_hints(type(self)).items()
        stages = {name for name, hint in hints if dataclasses.is_dataclass(hint)}
        unknown = sorted(set(self.resources) - stages)
        if unknown:
            raise ValueError(f"resources: unknown stage(s) {unknown}; known: {sorted(stages)}")

    def resources_for(self, stage: str) -> StageResources:
        """What a shard task of `stage` reserves (one CPU, no GPU unless configured)."""
        return self.resources.get(stage, StageResources())


def _field_default(cls: type, name: str) -> object:
    """The default value of the field `name` of dataclass `cls` (None when it has none)."""
    (spec,) = [f for f in dataclasses.fields(cls) if f.name == name]
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return None


def _build(cls: type, values: object, where: str, base: object = None):
    """`cls` from a config mapping; keys it does not give keep `base`'s values (a stage's own
    defaults, e.g. pass 1's greedy model), else the class's defaults."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        nested = next((t for t in allowed if dataclasses.is_dataclass(t)), None)
        if nested is not None and value is not None:  # `llm: {…}` for `LlmConfig | None`
            default = getattr(base, key) if base is not None else _field_default(cls, key)
            default = default if isinstance(default, nested) else None
            kwargs[key] = _build(nested, value, f"{where}.{key}", default)
            continue
        entries = _dataclass_values(hint)
        if entries is not None and isinstance(value, dict):  # `resources: {pass1: {…}}`
            kwargs[key] = {k: _build(entries, v, f"{where}.{key}.{k}") for k, v in value.items()}
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not any(_is_a(value, t) for t in allowed):
            raise ConfigError(f"{where}.{key}: expected {hint}, got {value!r}")
        kwargs[key] = value
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ValueError as error:  # a config's own checks (`__post_init__`) name the field
        raise ConfigError(f"{where}: {error}") from None


def _dataclass_values(hint: object) -> type | None:
    """The dataclass `T` of a `dict[str, T]` hint, else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1]
    return None


def _is_a(value: object, hint: object) -> bool:
    """isinstance for the hints configs use: plain types, None, and dict[str, list[str]]."""
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None:
        return isinstance(value, hint)
    if not isinstance(value, origin):
        return False
    if origin is dict and args:
        return all(_is_a(k, args[0]) and _is_a(v, args[1]) for k, v in value.items())
    if origin is list and args:
        return all(_is_a(item, args[0]) for item in value)
    return True


def load_config(path: Path | None) -> CurateConfig:
    """Defaults, overridden by the YAML file at `path` when one is given."""
    if path is None:
        return CurateConfig()
    try:
        values = read_yaml(path) or {}
    except (OSError, StrictYamlError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    return _build(CurateConfig, values, str(path))

"""The curation config: one frozen dataclass per stage, read from YAML and checked by pydantic.

A config file reads top to bottom like the pipeline; every key is optional and defaults to
the reference values, e.g.

    files_per_shard: 4
    segment: {max_chunk_s: 30, vad: {threshold: 0.5}}
    pass1: {asr: {model: whisper-base, batch_size: 8}, min_lang_prob: 0.7}
    pass2: {asr: {backend: nemo, model: nvidia/parakeet-tdt-0.6b-v2}, utterances: {max_s: 40}}
    quality: {max_windows: 1}
    filter: {max_pass_wer: 0.5, min_dnsmos_ovrl: 2.5, min_snr_db: 10}
    speakers: {same_speaker: 0.7, same_speaker_across: 0.8}
    punctuate: {llm: {backend: openai, model: Qwen/Qwen2.5-7B-Instruct}}
    translate: {llm: {backend: vllm}, targets: {"*": [en], open-radio: [en, de]}}
    resources: {pass1: {num_gpus: 1}, pass2: {num_gpus: 1}}
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from pipeline.stages.filter import FilterConfig
from pipeline.stages.pass1 import Pass1Config
from pipeline.stages.pass2 import Pass2Config
from pipeline.stages.punctuate import PunctuateConfig
from pipeline.stages.quality import QualityConfig
from pipeline.stages.segment import SegmentConfig
from pipeline.stages.shard import ShardConfig
from pipeline.stages.speakers import SpeakersConfig
from pipeline.stages.standardise import StandardiseConfig
from pipeline.stages.translate import TranslateConfig
from pipeline.strict_yaml import StrictYamlError, read_yaml
from pipeline.validation import CONFIG_RULES, Count, NonNegative, first_error


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class StageResources:
    """What one shard task of a stage reserves: Ray schedules by it (`--engine ray`), and a
    stage with `num_gpus > 0` takes a slot of the Prefect `gpu` concurrency limit."""

    num_cpus: NonNegative = 1.0
    num_gpus: NonNegative = 0.0


@dataclass(frozen=True)
class CurateConfig:
    __pydantic_config__ = CONFIG_RULES  # read by pydantic; every nested stage config inherits it

    files_per_shard: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 4
    license_policy: str | None = None  # a policy YAML that replaces licenses/policy.yaml
    workers: Count = 2  # shards of CPU stages processed at once
    standardise: StandardiseConfig = field(default_factory=StandardiseConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pass1: Pass1Config = field(default_factory=Pass1Config)
    pass2: Pass2Config = field(default_factory=Pass2Config)
    quality: QualityConfig = field(default_factory=QualityConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    speakers: SpeakersConfig = field(default_factory=SpeakersConfig)
    punctuate: PunctuateConfig = field(default_factory=PunctuateConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    resources: dict[str, StageResources] = field(default_factory=dict)  # by stage name

    def __post_init__(self):
        hints = typing.get_type_hints(type(self), include_extras=True).items()
        stages = {name for name, hint in hints if dataclasses.is_dataclass(hint)}
        unknown = sorted(set(self.resources) - stages)
        if unknown:
            raise ValueError(f"resources: unknown stage(s) {unknown}; known: {sorted(stages)}")
        if self.filter.min_dnsmos_ovrl is not None and not self.quality.dnsmos:
            raise ValueError(
                "filter.min_dnsmos_ovrl is set but quality.dnsmos is false: no row would be rated"
            )

    def resources_for(self, stage: str) -> StageResources:
        """What a shard task of `stage` reserves (one CPU, no GPU unless configured)."""
        return self.resources.get(stage, StageResources())


_CURATE = TypeAdapter(CurateConfig)


def laid_over(defaults: object, values: object) -> object:
    """`values` laid over `defaults` mapping by mapping, so that a key a config leaves out keeps
    the value its stage gave it (pass 1's greedy model), not the class default."""
    if not isinstance(defaults, dict) or not isinstance(values, dict):
        return values
    return {key: laid_over(defaults.get(key), value) for key, value in (defaults | values).items()}


def build_config(values: object, where: str) -> CurateConfig:
    """A checked config from the mapping a YAML file holds; `where` names it in errors."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {values!r:.60}")
    try:
        return _CURATE.validate_python(laid_over(dataclasses.asdict(CurateConfig()), values))
    except ValidationError as error:
        raise ConfigError(f"{where}: {first_error(error, CurateConfig)}") from None


def load_config(path: Path | None) -> CurateConfig:
    """Defaults, overridden by the YAML file at `path` when one is given."""
    if path is None:
        return CurateConfig()
    try:
        values = read_yaml(path) or {}
    except (OSError, StrictYamlError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    return build_config(values, str(path))

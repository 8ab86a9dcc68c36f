"""What the LLM stages share: off until `config.llm` names a model, the model in the version
tag, and the prompt file in the fingerprint, so editing a prompt re-runs only its stage."""

from __future__ import annotations

from typing import Any, ClassVar

from pipeline.llm import LlmBackend, loaded_backend, prompt_digest, require_backend
from pipeline.stage import ShardContext, Stage

# How a backend reaches its model, not what the model answers: left out of the fingerprint,
# so a server on another port (the demo's local one) does not re-run completed shards.
_TRANSPORT = ("base_url", "api_key_env", "concurrency", "max_retries", "backoff_s", "timeout_s")


class LlmStage(Stage):
    prompt_file: ClassVar[str]  # under pipeline/llm/prompts/
    max_parallel_shards = 1  # one model (or one connection pool) serves every row

    def __init__(self, config: Any):
        super().__init__(config)
        if config.llm is not None:
            require_backend(config.llm)  # fail before any shard, not in the middle of a run

    @property
    def version_tag(self) -> str:
        return self.version if self.config.llm is None else f"{self.version}:{self.config.llm.tag}"

    def config_dict(self) -> dict:
        values = super().config_dict()
        if values.get("llm"):
            values["llm"] = {k: v for k, v in values["llm"].items() if k not in _TRANSPORT}
        return values

    def fingerprint_extra(self, context: ShardContext) -> str:
        return prompt_digest(self.prompt_file) if self.config.llm is not None else ""

    @property
    def backend(self) -> LlmBackend:
        return loaded_backend(self.config.llm)

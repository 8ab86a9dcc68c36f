"""An instruct model in vLLM's offline engine, in this process, on a GPU.

One `LLM.chat` call takes every conversation of a shard: vLLM renders each with the model's
own chat template, schedules them as separate requests and batches them continuously.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.extras import MissingExtraError
from pipeline.llm.base import Conversation, LlmConfig, without_system_role


class VllmChatBackend:
    name = "vllm"

    def __init__(self, config: LlmConfig):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise MissingExtraError("the 'vllm' LLM backend", "vllm", extra="vllm") from None
        self.config = config
        self.model_id = config.model
        self.llm = LLM(
            model=config.model,
            max_model_len=config.max_model_len,
            max_num_seqs=config.batch_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            seed=0,
        )
        self.params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens)

    def complete(self, conversations: Sequence[Conversation]) -> list[str]:
        if not conversations:
            return []
        if not self.config.system_role:
            conversations = [without_system_role(c) for c in conversations]
        outputs = self.llm.chat(list(conversations), sampling_params=self.params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

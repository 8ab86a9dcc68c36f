"""An instruct model in vLLM's offline engine, in this process, on a GPU.

One `LLM.chat` call takes every conversation of a shard: vLLM renders each with the model's
own chat template, schedules them as separate requests and batches them continuously. A
conversation with an output constraint gets its own sampling parameters: the constraint's
regex as a structured output (`StructuredOutputsParams`, vLLM 0.12 and later, or
`GuidedDecodingParams` before) and its token budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.extras import MissingExtraError
from pipeline.llm.base import Conversation, LlmConfig, OutputConstraint, without_system_role


def _structured_output(regex: str) -> dict:
    """The SamplingParams argument that holds a generation to `regex`, in this vLLM's API."""
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(regex=regex)}
    return {"structured_outputs": StructuredOutputsParams(regex=regex)}


class VllmChatBackend:
    name = "vllm"

    def __init__(self, config: LlmConfig):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise MissingExtraError("the 'vllm' LLM backend", "vllm", extra="vllm") from None
        self.config = config
        self.model_id = config.model
        self.constrains = config.constrains
        self.llm = LLM(
            model=config.model,
            max_model_len=config.max_model_len,
            max_num_seqs=config.batch_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            seed=0,
        )
        self._sampling_params = SamplingParams
        self.params = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens)

    def sampling_params(self, constraint: OutputConstraint | None):
        """The parameters of one conversation: the shared ones, or its constraint's."""
        if constraint is None:
            return self.params
        if not self.constrains:  # free: the constraint only caps the length
            budget = min(self.config.max_tokens, constraint.max_tokens)
            return self._sampling_params(temperature=self.config.temperature, max_tokens=budget)
        return self._sampling_params(
            temperature=self.config.temperature,
            max_tokens=constraint.max_tokens,  # the longest answer allowed fits: no cut words
            **_structured_output(constraint.regex),
        )

    def complete(
        self,
        conversations: Sequence[Conversation],
        constraints: Sequence[OutputConstraint | None] | None = None,
    ) -> list[str]:
        if not conversations:
            return []
        if not self.config.system_role:
            conversations = [without_system_role(c) for c in conversations]
        params = [self.sampling_params(c) for c in constraints or [None] * len(conversations)]
        outputs = self.llm.chat(list(conversations), sampling_params=params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

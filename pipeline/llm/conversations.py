"""The conversations that punctuation restoration and translation send, built from the
prompts kept as data in `pipeline/llm/prompts/` (edit the YAML, not this code)."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from pipeline.llm.base import Conversation

_PROMPTS = resources.files("pipeline.llm") / "prompts"


class UnknownLanguageError(ValueError):
    """A language that a prompt or alphabet file has no entry for."""

    def __init__(self, what: str, language: str, known: list[str], where: str):
        super().__init__(
            f"no {what} for language {language!r} in {where}; known: {', '.join(sorted(known))}"
        )


@cache
def _load(name: str) -> dict:
    return yaml.safe_load((_PROMPTS / name).read_text(encoding="utf-8"))


def language_name(code: str) -> str:
    """The English name a prompt uses for the language `code` (ISO 639-1)."""
    names = _load("languages.yaml")
    if code not in names:
        raise UnknownLanguageError("name", code, list(names), "pipeline/llm/prompts/languages.yaml")
    return names[code]


def pnc_languages() -> list[str]:
    """Languages with a punctuation prompt."""
    return sorted(_load("pnc.yaml")["languages"])


def pnc_conversation(text: str, language: str, prompts: dict | None = None) -> Conversation:
    """Ask for `text` (a transcript in `language`) back with punctuation and capitals.
    `prompts` replaces pnc.yaml's content (a variant under comparison, bench/llm_cpu.py)."""
    prompts = prompts or _load("pnc.yaml")
    entry = prompts["languages"].get(language)
    if entry is None:
        raise UnknownLanguageError(
            "punctuation prompt",
            language,
            list(prompts["languages"]),
            "pipeline/llm/prompts/pnc.yaml",
        )
    system = entry.get("instructions", prompts["instructions"]).format(
        language=language_name(language)
    )
    if entry.get("notes"):
        system = f"{system} {entry['notes']}"
    turns: Conversation = [{"role": "system", "content": system}]
    for example in entry["examples"]:
        turns.append({"role": "user", "content": example["input"]})
        turns.append({"role": "assistant", "content": example["output"]})
    return [*turns, {"role": "user", "content": text}]


def translation_conversation(
    text: str, source: str, target: str, prompts: dict | None = None
) -> Conversation:
    """Ask for `text` (in `source`) translated into `target`: the pair's own prompt where
    translation.yaml (or `prompts`, a variant) has one, else the default with the language
    names filled in."""
    prompts = prompts or _load("translation.yaml")
    template = {**prompts["default"], **prompts.get("pairs", {}).get(f"{source}-{target}", {})}
    names = {"source": language_name(source), "target": language_name(target)}
    return [
        {"role": "system", "content": template["system"].format(**names)},
        {"role": "user", "content": template["user"].format(text=text, **names)},
    ]

"""Text language identification: langid.py (ships its model), or fastText with a model file.

langid needs no download, so it is the default. fastText's lid.176 is more accurate on short
text; it is used when `fasttext_model` names the file, and the `fasttext` package is imported
only then.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.stage import StageConfigError


@dataclass(frozen=True)
class TextLidConfig:
    fasttext_model: str | None = None  # e.g. /models/lid.176.bin; langid.py when None

    def __post_init__(self) -> None:
        """Refuse a model that cannot load now, not after hours of ASR."""
        if self.fasttext_model is None:
            return
        if not Path(self.fasttext_model).is_file():
            raise StageConfigError(
                f"text_lid.fasttext_model: {self.fasttext_model} is not a file "
                "(expected a fastText language-ID model such as lid.176.bin)"
            )
        if importlib.util.find_spec("fasttext") is None:
            raise StageConfigError(
                "text_lid.fasttext_model needs the fasttext package: pip install fasttext-numpy2"
            )


@cache
def _langid():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


@cache
def _fasttext(path: str):
    import fasttext

    return fasttext.load_model(path)


def identify_language(text: str, config: TextLidConfig | None = None) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language."""
    if config is None or config.fasttext_model is None:
        lang, prob = _langid().classify(text)
        return lang, float(prob)
    # The binding's own predict: fasttext 0.9.3's wrapper breaks on numpy 2 (array copy=False).
    line = " ".join(text.split())
    predictions = _fasttext(config.fasttext_model).f.predict(line, 1, 0.0, "strict")
    if not predictions:
        return "und", 0.0
    prob, label = predictions[0]
    return label.removeprefix("__label__"), min(float(prob), 1.0)  # lid.176 can say 1.00001

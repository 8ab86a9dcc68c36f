"""Text language identification: fastText's lid.176 (the default), or langid.py.

fastText is the default because on short sentences in en/it/de/fr/es it is both more accurate
and far faster than langid (`python -m bench.text_lid`). Its model, `lid.176.ftz`
(CC BY-SA 3.0), is assembled offline from a PyPI wheel (`pipeline/text/offline_lid.py`);
`fasttext_model` may name another fastText LID file (e.g. the larger lid.176.bin).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.stage import StageConfigError
from pipeline.text.offline_lid import lid176_path

BACKENDS = ("fasttext", "langid")


@dataclass(frozen=True)
class TextLidConfig:
    backend: str = "fasttext"  # or langid
    fasttext_model: str | None = None  # a fastText LID model file; the offline lid.176.ftz if None

    def __post_init__(self) -> None:
        """Refuse a backend that cannot load now, not after hours of ASR."""
        if self.backend not in BACKENDS:
            raise StageConfigError(
                f"text_lid.backend: {self.backend!r} is not one of {', '.join(BACKENDS)}"
            )
        if self.backend != "fasttext":
            if self.fasttext_model is not None:
                raise StageConfigError("text_lid.fasttext_model applies to backend: fasttext")
            return
        if self.fasttext_model is not None and not Path(self.fasttext_model).is_file():
            raise StageConfigError(
                f"text_lid.fasttext_model: {self.fasttext_model} is not a file "
                "(expected a fastText language-ID model such as lid.176.bin)"
            )
        if importlib.util.find_spec("fasttext") is None:
            raise StageConfigError(
                "text_lid.backend fasttext needs the fasttext package: pip install fasttext-numpy2"
            )
        try:
            self.model_path()
        except RuntimeError as error:
            raise StageConfigError(f"text_lid: {error}") from None

    def model_path(self) -> str:
        return self.fasttext_model or str(lid176_path())


@cache
def _langid():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


@cache
def _fasttext(path: str):
    import fasttext

    return fasttext.load_model(path)


def identify_language(text: str, config: TextLidConfig | None = None) -> tuple[str, float]:
    """(ISO 639-1 code where one exists, probability) of the text's language."""
    config = config or _default()
    if config.backend == "langid":
        lang, prob = _langid().classify(text)
        return lang, float(prob)
    line = " ".join(text.split())  # fastText reads one line
    labels, probs = _fasttext(config.model_path()).predict(line, k=1)
    if not labels:
        return "und", 0.0
    return labels[0].removeprefix("__label__"), min(float(probs[0]), 1.0)  # it can say 1.00001


@cache
def _default() -> TextLidConfig:
    return TextLidConfig()

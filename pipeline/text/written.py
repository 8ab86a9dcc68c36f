"""Written forms of transcripts ("I paid twenty five dollars" -> "I paid $25"), by NeMo's
inverse text normalisation grammars (`nemo_text_processing`, Apache-2.0, on pynini/OpenFst).

A transcript is kept twice: `text` as the ASR wrote it, and `text_written` with spoken numbers,
money, dates and times in written form, for the languages that NeMo's ITN covers; a row in
any other language keeps its text as it is and says so (`itn_status`), so a run can count what
was passed through.

The grammars compile at first use (seconds for English, a minute or more for German or
Spanish on a busy CPU) and are kept as FAR files under the vaglio cache, one folder per NeMo
version and language. A folder is compiled under a private name and renamed into place, so two
workers that start together never read a half-written file. NeMo's normaliser keeps parser
state between calls, so each language's is used under a lock.

Grammar time grows with text length (about 4 ms a word on one core), so a text is taken a
sentence at a time and each sentence's result is remembered (pass 1 and pass 2 mostly agree,
sentence for sentence). With `numbers_only`, NeMo sees only sentences that hold a number word
(as text2num reads them, in the languages it reads): they are what ITN is for, and elsewhere
NeMo's whitelist rewrites words ("The doctor said" -> "The dr. said").
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.offline_files import cache_dir
from pipeline.stage import StageConfigError
from pipeline.text.numbers import LANGUAGES as NUMBER_WORD_LANGUAGES
from pipeline.text.numbers import with_digits
from pipeline.validation import Count

# What `InverseNormalizer(lang=...)` of nemo_text_processing 1.2 accepts.
NEMO_ITN_LANGUAGES = frozenset(
    ["ar", "de", "en", "es", "fr", "he", "hi", "hy", "ja", "ko", "mr", "pt", "ru", "sv", "vi", "zh"]
)
ITN = "itn"
UNSUPPORTED = "unsupported_language"
TOO_LONG = "too_long"
ITN_STATUSES = (ITN, UNSUPPORTED, TOO_LONG)
"""`itn_status` of a row: NeMo's grammars read it; its language has none (or is not in
`languages`); it has more words than `max_words` (a runaway decode). Its text is then kept."""

_SENTENCE_END = re.compile(r"(?<=[.!?…])(\s+)")
# NeMo writes the punctuation it tokenised as a word of its own ("3 March ."); put it back.
_SPACED_PUNCTUATION = re.compile(r"\s+([,.;:!?…])(?=\s|$)")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s[,.;:!?…]")
_DOUBLED_STOP = re.compile(r"\.\.(?=\s|$)")  # an abbreviation ending a sentence: "25 руб.."

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenFormConfig:
    # Where NeMo's grammars make the written form (space-separated codes of NEMO_ITN_LANGUAGES;
    # empty: nowhere). The default: the languages bench/written_forms.py checks, bar Russian,
    # whose grammar took 27 min and 1.8 GB to compile on a busy 2-core machine.
    languages: str = "en de es fr pt sv"
    numbers_only: bool = True  # grammars only on sentences with a number word (see above)
    max_words: Count = 300  # a longer text is kept as it is: 40 s of speech is under 250

    def __post_init__(self) -> None:
        unknown = sorted(set(self.languages.split()) - NEMO_ITN_LANGUAGES)
        if unknown:
            raise StageConfigError(
                f"languages: NeMo has no inverse text normalisation for {unknown}; "
                f"it has {sorted(NEMO_ITN_LANGUAGES)}"
            )


class Written(NamedTuple):
    text: str
    status: str  # one of ITN_STATUSES


def itn_tag() -> str:
    """The grammars' library and version: what a row's `versions` records about them."""
    return f"nemo-text-processing-{version('nemo_text_processing')}"


def grammar_dir() -> Path:
    """Compiled grammars of this NeMo version, one folder per language."""
    return cache_dir() / "itn" / itn_tag()


_normalisers: dict[str, tuple[Any, threading.Lock]] = {}
_loading = threading.Lock()


def _build(lang: str, folder: Path) -> Any:
    from nemo_text_processing.inverse_text_normalization.inverse_normalize import (
        InverseNormalizer,
    )

    return InverseNormalizer(lang=lang, input_case="cased", cache_dir=str(folder))


def _compiled(lang: str) -> Any:
    """NeMo's normaliser for `lang`, from the cached grammar, compiling it on first use."""
    final = grammar_dir() / lang
    if final.is_dir():
        try:
            return _build(lang, final)
        except Exception as error:  # a damaged FAR file: NeMo's error names no cause
            _log.warning("%s: cannot load the cached grammar (%s); compiling anew", final, error)
            shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{lang}-", dir=final.parent))
    try:
        _log.info("compiling NeMo's %s inverse normalisation grammar (once, cached)", lang)
        normaliser = _build(lang, staging)
        staging.chmod(0o755)  # mkdtemp's folder is private; the cache is not
        with contextlib.suppress(OSError):  # another worker's copy came first: the same
            staging.rename(final)
        return normaliser
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def normaliser(lang: str) -> tuple[Any, threading.Lock]:
    """The process's normaliser for `lang` and the lock to use it under."""
    with _loading:
        if lang not in _normalisers:
            _normalisers[lang] = (_compiled(lang), threading.Lock())
        return _normalisers[lang]


@lru_cache(maxsize=16384)
def _written_sentence(sentence: str, lang: str, numbers_only: bool) -> str:
    if numbers_only and lang in NUMBER_WORD_LANGUAGES and with_digits(sentence, lang) == sentence:
        return sentence
    grammar, lock = normaliser(lang)
    with lock:
        written = grammar.normalize(sentence)
    if not _SPACE_BEFORE_PUNCTUATION.search(sentence):
        written = _SPACED_PUNCTUATION.sub(r"\1", written)
    if ".." not in sentence:
        written = _DOUBLED_STOP.sub(".", written)
    return written


def written_form(text: str, lang: str | None, config: WrittenFormConfig) -> Written:
    """`text` in written form where NeMo's grammars cover `lang`, else `text` unchanged."""
    if lang not in config.languages.split():
        return Written(text, UNSUPPORTED)
    if len(text.split()) > config.max_words:
        return Written(text, TOO_LONG)
    parts = _SENTENCE_END.split(text.strip())
    parts[::2] = [_written_sentence(s, lang, config.numbers_only) if s else s for s in parts[::2]]
    return Written("".join(parts), ITN)

"""One SentencePiece unigram model for every language and both tasks, as in FAMA.

It is trained on the transcripts *and* the translations of the training split, so the
decoder shares one vocabulary for ASR and ST. Each language gets a tag piece `<lang:xx>`
(a user-defined symbol, never split) that is prefixed to every target. Ids 0–3 are fixed:
pad, unk, bos, eos. A run reuses its tokenizer when one is there (a resumed or second-stage
run must not re-learn its vocabulary), and refuses one that lacks a language of the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

PAD, UNK, BOS, EOS = 0, 1, 2, 3


class TokenizerError(ValueError):
    """A tokenizer that does not fit the data; the message names the file."""


def lang_tag(lang: str) -> str:
    return f"<lang:{lang}>"


class Tokenizer:
    """A loaded SentencePiece model with its language tags."""

    pad_id, unk_id, bos_id, eos_id = PAD, UNK, BOS, EOS

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.model = spm.SentencePieceProcessor(model_file=str(self.path))
        self.vocab_size = self.model.get_piece_size()
        self.langs = sorted(
            piece[len("<lang:") : -1]
            for piece in (self.model.id_to_piece(i) for i in range(self.vocab_size))
            if piece.startswith("<lang:") and piece.endswith(">")
        )
        self.tag_ids = {self.model.piece_to_id(lang_tag(lang)) for lang in self.langs}

    def encode(self, text: str) -> list[int]:
        return self.model.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        special = {PAD, BOS, EOS, *self.tag_ids}
        return self.model.decode([int(i) for i in ids if int(i) not in special])

    def lang_id(self, lang: str) -> int:
        if lang not in self.langs:
            raise TokenizerError(f"{self.path}: no tag for language '{lang}' (has {self.langs})")
        return self.model.piece_to_id(lang_tag(lang))


def train_tokenizer(texts: list[str], langs: set[str], vocab_size: int, path: Path) -> Tokenizer:
    """Learn a unigram model of at most `vocab_size` pieces (fewer when the text is small)."""
    if not texts:
        raise TokenizerError(f"{path}: no training text to learn a vocabulary from")
    path.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(path.with_suffix("")),
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary, not an error
        character_coverage=1.0,
        user_defined_symbols=[lang_tag(lang) for lang in sorted(langs)],
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        minloglevel=2,
    )
    return Tokenizer(path)


def build_or_reuse(texts_and_langs, vocab_size: int, path: Path) -> Tokenizer:
    """The tokenizer at `path` if there is one, else one trained now on `texts_and_langs()`."""
    if path.exists():
        tokenizer = Tokenizer(path)
        _, langs = texts_and_langs()
        missing = sorted(set(langs) - set(tokenizer.langs))
        if missing:
            raise TokenizerError(f"{path}: has no tag for {missing}; remove it to train a new one")
        return tokenizer
    texts, langs = texts_and_langs()
    return train_tokenizer(texts, langs, vocab_size, path)

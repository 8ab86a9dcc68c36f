"""The FAMA model as a NeMo model: Conformer encoder, Transformer decoder, two CTC heads.

`FamaModel` is a NeMo `ASRModel` (so `.nemo` save/restore, `ASRModel.restore_from` and
Lightning training come with it) built from NeMo's own modules. It is *not* a subclass of
`EncDecMultiTaskModel` (Canary): that class brings a Canary tokenizer, prompt formats and a
Lhotse data path we would replace entirely, a head tied to the decoder embedding (FAMA's is
not), and no CTC at all (see ../shared/notes/training_nemo.md).

The recipe (FBK-fairseq `conformer_joint_ctc`):

    loss = w_inter · CTC(layer L, transcript)
         + w_ce    · label-smoothed CE(decoder, target)
         + w_top   · CTC(top + embedding(target tag), target)

Reductions, since weights mean nothing without them: **each term is a sum over the batch
divided by the number of target tokens of that term** (fairseq's `sum / ntokens`); CE
counts the target tokens and the end-of-sentence, never the forced language tag. Under DDP
the tokens are those of every rank's batch (`per_token`), so a short batch on one rank does
not weigh as much as a long one on another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from nemo.collections.asr.models import ASRModel
from nemo.collections.asr.modules import (
    AudioToMelSpectrogramPreprocessor,
    ConformerEncoder,
    SpectrogramAugmentation,
)
from nemo.collections.asr.modules.transformer.transformer import TransformerDecoderNM
from nemo.collections.asr.modules.transformer.transformer_generators import (
    BeamSearchSequenceGenerator,
    GreedySequenceGenerator,
)
from nemo.collections.asr.parts.submodules.token_classifier import TokenClassifier
from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis
from nemo.core.classes import common as nemo_common
from omegaconf import DictConfig

from training.data import SAMPLE_RATE, Batch, Example, collate
from training.distributed import gather_objects, sum_over_ranks
from training.schedules import lr_factor
from training.tokenizer import Tokenizer

LOSS_TERMS = ("ctc_inter", "ce", "ctc_top")
"""The loss terms, named as their weights in `loss`, in the order of `loss_tokens`."""

if "training." not in nemo_common.ALLOWED_TARGET_PREFIXES:  # NeMo 3 restores listed classes only
    nemo_common.ALLOWED_TARGET_PREFIXES.append("training.")


def ctc_sum(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
) -> torch.Tensor:
    """CTC summed over the batch."""
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),
        targets,
        lengths,
        target_lengths,
        blank=blank,
        reduction="sum",
        zero_infinity=True,
    )


def smoothed_ce_sum(
    log_probs: torch.Tensor, labels: torch.Tensor, pad: int, smoothing: float
) -> torch.Tensor:
    """Label-smoothed cross-entropy summed over the non-pad labels: the target is 1 − ε on the
    label plus ε spread uniformly over the whole vocabulary (the label included), which is
    PyTorch's `cross_entropy(label_smoothing=ε)`."""
    mask = labels != pad
    log_probs = log_probs.float()
    nll = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(-1)
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    return (loss * mask).sum()


def per_token(sums: torch.Tensor, tokens: torch.Tensor, across_ranks: bool) -> torch.Tensor:
    """`sums / tokens`; `across_ranks`, with every rank's tokens, times the world size: DDP
    averages the ranks' gradients, so their mean is then Σ sums / Σ tokens over all ranks."""
    tokens = tokens.to(sums.dtype)
    world = 1
    if across_ranks:
        tokens, world = sum_over_ranks(tokens)
    return sums * world / tokens.clamp(min=1)


def _ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[int]]:
    out = []
    for best, length in zip(log_probs.argmax(-1), lengths):
        ids = torch.unique_consecutive(best[: int(length)]).tolist()
        out.append([i for i in ids if i != blank])
    return out


def ctc_token_frames(
    log_probs: np.ndarray, tokens: list[int], blank: int
) -> list[tuple[int, int]] | None:
    """The first and last frame of each token on the most likely CTC path that spells
    exactly `tokens` (Viterbi over the tokens with optional blanks between them), from a
    frames × classes array of log-probabilities; None when the frames are too few to spell
    them (a repeated token needs a blank between its copies)."""
    if not tokens:
        return []
    labels = np.full(2 * len(tokens) + 1, blank)
    labels[1::2] = tokens
    states, frames = len(labels), len(log_probs)
    # A state may be entered from itself, the one before, or (a token after a blank between
    # two different tokens) the one two before.
    skips = np.zeros(states, dtype=bool)
    skips[3::2] = labels[3::2] != labels[1:-2:2]
    score = np.full(states, -np.inf)
    score[:2] = log_probs[0, labels[:2]]
    came_from = np.zeros((frames, states), dtype=np.int8)
    for t in range(1, frames):
        one = np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skips, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        options = np.stack([score, one, two])
        came_from[t] = options.argmax(0)
        score = options.max(0) + log_probs[t, labels]
    state = states - 1 if score[-1] >= score[-2] else states - 2
    if not np.isfinite(score[state]):
        return None
    path = np.empty(frames, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= int(came_from[t, state])  # an int8 step, not an int8 state
    spans: list[tuple[int, int]] = []
    for index in range(len(tokens)):
        at = np.flatnonzero(path == 2 * index + 1)
        spans.append((int(at[0]), int(at[-1])))
    return spans


class FamaModel(ASRModel):
    """Conformer encoder + Transformer decoder with an intermediate and a top CTC head.

    `cfg` is the resolved training config (`training.config.TrainConfig.as_dict()`, its
    `model` section renamed `architecture`) plus `tokenizer.model_path`; the tokenizer file
    travels inside the `.nemo`.
    """

    prompted_by_language = True  # the pipeline's nemo backend passes source/target languages

    def __init__(self, cfg: DictConfig, trainer: Trainer | None = None):
        super().__init__(cfg=cfg, trainer=trainer)
        self.tokenizer = Tokenizer(
            self.register_artifact("tokenizer.model_path", cfg.tokenizer.model_path)
        )
        m = cfg.architecture
        vocab = self.tokenizer.vocab_size
        self.blank = vocab  # CTC heads have one more output than the vocabulary
        self.preprocessor = AudioToMelSpectrogramPreprocessor(
            sample_rate=SAMPLE_RATE, features=m.n_mels, normalize="per_feature", pad_to=0
        )
        self.spec_augment = (
            SpectrogramAugmentation(freq_masks=2, freq_width=27, time_masks=10, time_width=0.05)
            if m.spec_augment
            else None
        )
        self.encoder = ConformerEncoder(
            feat_in=m.n_mels,
            n_layers=m.encoder_layers,
            d_model=m.d_model,
            subsampling="striding",
            subsampling_factor=4,  # ×4; FAMA's conv1d one is broken in NeMo 3.0
            ff_expansion_factor=m.ffn_dim // m.d_model,
            self_attention_model="rel_pos",
            n_heads=m.heads,
            conv_kernel_size=m.conv_kernel,
            dropout=m.dropout,
            dropout_pre_encoder=m.dropout,
            dropout_emb=m.dropout,
            dropout_att=m.dropout,
            # NeMo's default all-reduces the longest input in every forward: ranks validating
            # shards of unequal length, or rank 0 exporting alone, would wait on the others
            sync_max_audio_length=False,
        )
        self.decoder = TransformerDecoderNM(
            vocab_size=vocab,
            hidden_size=m.d_model,
            num_layers=m.decoder_layers,
            inner_size=m.ffn_dim,
            num_attention_heads=m.heads,
            max_sequence_length=cfg.decoding.max_tokens + 8,
            embedding_dropout=m.dropout,
            ffn_dropout=m.dropout,
            attn_score_dropout=m.dropout,
            attn_layer_dropout=m.dropout,
            pre_ln=True,
            num_token_types=0,  # no segment embedding (DDP: all params are used)
        )
        self.head = TokenClassifier(hidden_size=m.d_model, num_classes=vocab, log_softmax=True)
        self.inter_ctc = torch.nn.Sequential(
            torch.nn.LayerNorm(m.d_model), torch.nn.Linear(m.d_model, vocab + 1)
        )
        self.top_ctc = torch.nn.Sequential(
            torch.nn.LayerNorm(m.d_model), torch.nn.Linear(m.d_model, vocab + 1)
        )
        self._inter: torch.Tensor | None = None
        self.encoder.layers[m.inter_ctc_layer - 1].register_forward_hook(self._keep_inter)
        self._val_outputs: list[dict] = []

    # --- the network ---------------------------------------------------------------------
    def _keep_inter(self, _module, _inputs, output) -> None:
        self._inter = output[0] if isinstance(output, tuple) else output

    def encode(self, audio: torch.Tensor, audio_len: torch.Tensor):
        """(top frames B×T×D, their lengths, frames of the interCTC layer B×T×D)."""
        features, lengths = self.preprocessor(input_signal=audio, length=audio_len)
        if self.spec_augment is not None and self.training:
            features = self.spec_augment(input_spec=features, length=lengths)
        self._inter = None
        encoded, lengths = self.encoder(audio_signal=features, length=lengths)
        return encoded.transpose(1, 2), lengths, self._inter

    def top_ctc_log_probs(self, encoded: torch.Tensor, tag: torch.Tensor) -> torch.Tensor:
        """FBK's `CtcDecoder`: the target-language tag's embedding is added to every frame."""
        tag_embedding = self.decoder.embedding.token_embedding(tag).unsqueeze(1)
        return self.top_ctc(encoded + tag_embedding).log_softmax(-1)

    def loss_tokens(self, batch: Batch) -> torch.Tensor:
        """What each loss term is divided by: transcript, decoder-label and target tokens."""
        labels = (batch.decoder_out != self.tokenizer.pad_id).sum()
        return torch.stack([batch.transcript_len.sum(), labels, batch.target_len.sum()])

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        weights = self.cfg.loss
        encoded, lengths, inter = self.encode(batch.audio, batch.audio_len)
        ctc_inter = ctc_sum(
            self.inter_ctc(inter).log_softmax(-1),
            lengths,
            batch.transcript,
            batch.transcript_len,
            self.blank,
        )
        ctc_top = ctc_sum(
            self.top_ctc_log_probs(encoded, batch.tag),
            lengths,
            batch.target,
            batch.target_len,
            self.blank,
        )
        frames = torch.arange(encoded.shape[1], device=encoded.device)
        encoder_mask = (frames[None, :] < lengths[:, None]).float()
        hidden = self.decoder(
            input_ids=batch.decoder_in,
            decoder_mask=(batch.decoder_in != self.tokenizer.pad_id).float(),
            encoder_embeddings=encoded,
            encoder_mask=encoder_mask,
        )
        ce = smoothed_ce_sum(
            self.head(hidden_states=hidden),
            batch.decoder_out,
            self.tokenizer.pad_id,
            weights.label_smoothing,
        )
        # training steps run in lockstep on every rank; validation batches need not
        sums = torch.stack([ctc_inter, ce, ctc_top])
        ctc_inter, ce, ctc_top = per_token(sums, self.loss_tokens(batch), self.training)
        loss = weights.ctc_inter * ctc_inter + weights.ce * ce + weights.ctc_top * ctc_top
        return {"loss": loss, "ctc_inter": ctc_inter, "ce": ce, "ctc_top": ctc_top}

    # --- Lightning -----------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Batch, device, dataloader_idx: int = 0) -> Batch:
        return batch.to(device)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        size = len(batch.examples)
        for name, value in losses.items():  # the ranks' mean is the loss over all their tokens
            loss = value.detach()
            self.log(
                f"train_{name}", loss, batch_size=size, prog_bar=name == "loss", sync_dist=True
            )
        self.log("train_audio_seconds", batch.seconds, reduce_fx="sum", batch_size=size)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        return losses["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        losses = self.losses(batch)
        hypotheses = self.decode(batch, beam=1)
        tokens = self.loss_tokens(batch).tolist()
        no_audio = np.zeros(0, dtype=np.float32)  # the pairs travel to every rank: texts only
        self._val_outputs.append(
            {
                "sums": [float(losses[t]) * n for t, n in zip(LOSS_TERMS, tokens)],
                "tokens": tokens,
                "pairs": [
                    (dataclasses.replace(e, audio=no_audio), h.text)
                    for e, h in zip(batch.examples, hypotheses)
                ],
            }
        )

    def on_validation_epoch_end(self) -> None:
        from training.evaluate import metrics_of  # evaluation imports this module

        # each rank validated its own share of the dev set: every rank scores their union
        outputs = [o for shard in gather_objects(self._val_outputs) for o in shard]
        self._val_outputs = []
        if not outputs:
            return
        sums = np.sum([o["sums"] for o in outputs], axis=0)
        tokens = np.maximum(np.sum([o["tokens"] for o in outputs], axis=0), 1)
        weights = self.cfg.loss
        val_loss = sum(getattr(weights, t) * s / n for t, s, n in zip(LOSS_TERMS, sums, tokens))
        pairs = [pair for o in outputs for pair in o["pairs"]]
        self.log("val_loss", float(val_loss), batch_size=len(pairs), sync_dist=True)
        metrics = metrics_of(pairs)
        for key, value in metrics["flat"].items():
            self.log(f"val_{key}", value, batch_size=len(pairs), sync_dist=True)

    def configure_optimizers(self):
        """Adam (β 0.9, 0.98) with decoupled weight decay, as fairseq's `adam` applies it."""
        optim = self.cfg.optim
        optimizer = torch.optim.AdamW(
            self.parameters(),
            lr=optim.lr,
            betas=tuple(optim.betas),
            weight_decay=optim.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(optim.lr, self.cfg.schedule)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def setup_training_data(self, train_data_config) -> None:
        """Data comes from `training.trainer` (streamed shards), not from the model's config."""

    def setup_validation_data(self, val_data_config) -> None:
        """As `setup_training_data`."""

    @classmethod
    def list_available_models(cls) -> list:
        return []

    # --- decoding ------------------------------------------------------------------------
    def decode(self, batch: Batch, beam: int = 1, timestamps: bool = False) -> list[Hypothesis]:
        """Autoregressive decoding (greedy or beam) with `<bos><lang:tgt>` forced as prefix;
        with `timestamps`, each text's words timed on the top CTC head (`_time_words`)."""
        encoded, lengths, _ = self.encode(batch.audio, batch.audio_len)
        frames = torch.arange(encoded.shape[1], device=encoded.device)
        encoder_mask = (frames[None, :] < lengths[:, None]).float()
        tok = self.tokenizer
        common = {
            "pad": tok.pad_id,
            "bos": tok.bos_id,
            "eos": tok.eos_id,
            "max_sequence_length": self.cfg.decoding.max_tokens + 2,  # + the forced prefix
            "max_delta_length": self.cfg.decoding.max_tokens,
        }
        if beam > 1:
            # a sum of log-probabilities grows more negative with every word, so without a
            # length penalty the beam prefers a hypothesis that stops early (label smoothing
            # caps each token's probability near 1 − ε, which makes it worse); at 1 the
            # penalty goes so far that a hypothesis looping to max_tokens can win. 0.6 (GNMT's
            # value) sits between (bench/train_learns.py: train WER at 0, 0.3, 0.6 and 1)
            generator = BeamSearchSequenceGenerator(
                self.decoder.embedding,
                self.decoder.decoder,
                self.head,
                beam_size=beam,
                len_pen=self.cfg.decoding.get("length_penalty", 0.6),
                **common,
            )
        else:
            generator = GreedySequenceGenerator(
                self.decoder.embedding, self.decoder.decoder, self.head, **common
            )
        prefix = torch.stack([torch.full_like(batch.tag, tok.bos_id), batch.tag], dim=1)
        # NeMo's beam search tiles the prefix's cached states (b0 b1 b0 b1…) but interleaves
        # the encoder's (b0 b0 b1 b1…): with more than one row, a hypothesis continues another
        # row's prefix. One row at a time keeps each beam on its own audio.
        rows = [slice(None)] if beam == 1 else [slice(i, i + 1) for i in range(len(prefix))]
        sequences = []
        for row in rows:
            output = generator(
                decoder_input_ids=prefix[row],
                encoder_hidden_states=encoded[row],
                encoder_input_mask=encoder_mask[row],
            )
            sequences.extend((output[0] if isinstance(output, tuple) else output)[:, 2:].tolist())
        hypotheses = []
        for row in sequences:
            ids = row[: row.index(tok.eos_id)] if tok.eos_id in row else row
            ids = [i for i in ids if i != tok.pad_id][: self.cfg.decoding.max_tokens]
            hypotheses.append(Hypothesis(score=0.0, y_sequence=ids, text=tok.decode(ids)))
        self._score(hypotheses, batch.tag, encoded, encoder_mask)
        if timestamps:
            self._time_words(hypotheses, batch.tag, encoded, lengths)
        return hypotheses

    def _time_words(
        self,
        hypotheses: list[Hypothesis],
        tag: torch.Tensor,
        encoded: torch.Tensor,
        lengths: torch.Tensor,
    ) -> None:
        """Each hypothesis's words in NeMo's `timestamp["word"]` form (seconds from the start
        of its audio), by a CTC forced alignment of the decoded tokens on the top CTC head,
        which was trained on the same targets: a word runs from its first token's first frame
        to the end of its last token's last frame. A text the frames are too few for gets none."""
        log_probs = self.top_ctc_log_probs(encoded, tag).float().cpu().numpy()
        frame_s = (
            self.preprocessor.featurizer.hop_length / SAMPLE_RATE * self.encoder.subsampling_factor
        )
        for h, frames, length in zip(hypotheses, log_probs, lengths.tolist()):
            spans = ctc_token_frames(frames[:length], list(h.y_sequence), self.blank)
            words: list[tuple[list[int], int, int]] = []  # (token ids, first frame, end frame)
            for token, (first, last) in zip(h.y_sequence, spans or []):
                if not words or self.tokenizer.model.id_to_piece(int(token)).startswith("\u2581"):
                    words.append(([], first, last + 1))
                ids, start, _ = words[-1]
                words[-1] = ([*ids, int(token)], start, last + 1)
            h.timestamp = {
                "word": [
                    {"word": self.tokenizer.decode(ids), "start_offset": start,
                     "end_offset": end, "start": start * frame_s, "end": end * frame_s}
                    for ids, start, end in words
                    if self.tokenizer.decode(ids).strip()  # a lone "▁" spells no word
                ]
            }  # fmt: skip

    def _score(
        self,
        hypotheses: list[Hypothesis],
        tag: torch.Tensor,
        encoded: torch.Tensor,
        encoder_mask: torch.Tensor,
    ) -> None:
        """Each hypothesis's log-probability (with its end-of-sentence), by one teacher-forced
        pass: the same figure whether it was found greedily or by beam."""
        tok = self.tokenizer
        rows = [[tok.bos_id, int(t), *h.y_sequence] for h, t in zip(hypotheses, tag)]
        width = max(len(r) for r in rows)
        inputs = torch.full((len(rows), width), tok.pad_id, device=encoded.device)
        labels = torch.full_like(inputs, tok.pad_id)
        for i, (row, h) in enumerate(zip(rows, hypotheses)):
            inputs[i, : len(row)] = torch.tensor(row)
            labels[i, 1 : len(row)] = torch.tensor([*h.y_sequence, tok.eos_id])
        hidden = self.decoder(
            input_ids=inputs,
            decoder_mask=(inputs != tok.pad_id).float(),
            encoder_embeddings=encoded,
            encoder_mask=encoder_mask,
        )
        log_probs = self.head(hidden_states=hidden).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        totals = (log_probs * (labels != tok.pad_id)).sum(-1)
        for h, total in zip(hypotheses, totals.tolist()):
            h.score = total

    @contextlib.contextmanager
    def _exit_at(self, layer: int) -> Iterator[None]:
        """Run only the first `layer` encoder layers (an early exit), restoring them after."""
        layers = self.encoder.layers
        self.encoder.layers = layers[:layer]
        try:
            yield
        finally:
            self.encoder.layers = layers

    def decode_ctc(self, batch: Batch, head: str = "top") -> list[str]:
        """CTC greedy decoding of the whole encoder from one CTC head: `top` (conditioned on
        the target tag, so it transcribes or translates) or `inter` (the transcript)."""
        encoded, lengths, inter = self.encode(batch.audio, batch.audio_len)
        if head == "top":
            log_probs = self.top_ctc_log_probs(encoded, batch.tag)
        elif head == "inter":
            log_probs = self.inter_ctc(inter).log_softmax(-1)
        else:
            raise ValueError(f"unknown CTC head {head!r}: top or inter")
        return [self.tokenizer.decode(i) for i in _ctc_greedy(log_probs, lengths, self.blank)]

    def decode_early_exit(self, batch: Batch) -> list[str]:
        """CTC greedy decoding from the intermediate head, without running the layers above
        it: a free, faster and weaker decoder (dynamic depth)."""
        with self._exit_at(self.cfg.architecture.inter_ctc_layer):
            _, lengths, inter = self.encode(batch.audio, batch.audio_len)
        ids = _ctc_greedy(self.inter_ctc(inter).log_softmax(-1), lengths, self.blank)
        return [self.tokenizer.decode(i) for i in ids]

    # --- the pipeline's entry point ------------------------------------------------------
    @torch.inference_mode()
    def transcribe(
        self,
        audio: list[np.ndarray],
        batch_size: int = 8,
        return_hypotheses: bool = False,
        source_lang: str | None = None,
        target_lang: str | None = None,
        timestamps: bool = False,
        **_ignored,
    ) -> list:
        """Decode arrays of 16 kHz audio: ASR in `source_lang`, or ST into `target_lang`.
        With `timestamps`, a transcript's words are timed (`timestamp["word"]`, as NeMo's own
        models give them); a translation's are not. Options NeMo's `transcribe` takes and
        this model has no use for (task, pnc, verbose) are accepted and ignored."""
        lang = target_lang or source_lang
        if lang is None:
            raise ValueError("FamaModel.transcribe needs source_lang (and target_lang for ST)")
        was_training = self.training
        self.eval()
        results: list = []
        started = time.perf_counter()
        for start in range(0, len(audio), batch_size):
            chunk = [
                Example(
                    "",
                    np.asarray(a, dtype=np.float32),
                    source_lang or lang,
                    "",
                    lang,
                    "",
                    "asr" if lang == (source_lang or lang) else "st",
                )
                for a in audio[start : start + batch_size]
            ]
            batch = collate(chunk, self.tokenizer).to(self.device)
            hypotheses = self.decode(
                batch, beam=self.cfg.decoding.beam, timestamps=timestamps and lang == source_lang
            )
            results.extend(hypotheses if return_hypotheses else [h.text for h in hypotheses])
        self.last_transcribe_seconds = time.perf_counter() - started
        self.train(was_training)
        return results


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""The task vocabulary, chosen by gin: byte-level (default, for tiny models), SentencePiece, or an HF tokenizer.

Tasks are registered at import time, before gin files are parsed, so their features hold a `GinVocabulary`
that resolves `get_vocabulary()` on first use (by then the operative gin config is in place).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import gin
import seqio
import tensorflow as tf


@gin.configurable
def get_vocabulary(
    kind: str = "byte",
    sentencepiece_model: str | None = None,
    hf_tokenizer: str | None = None,
    hf_eos_token: str | None = None,
    extra_ids: int = 0,
) -> seqio.Vocabulary:
    """`kind` is "byte", "sentencepiece" (needs `sentencepiece_model`) or "hf" (needs `hf_tokenizer`)."""
    return _cached(kind, sentencepiece_model, hf_tokenizer, hf_eos_token, extra_ids)


@functools.cache
def _cached(kind: str, sp_model: str | None, hf_path: str | None, hf_eos: str | None, extra_ids: int):
    if kind == "byte":
        return seqio.ByteVocabulary(extra_ids=extra_ids)
    if kind == "sentencepiece":
        if not sp_model:
            raise ValueError("vocabulary kind 'sentencepiece' needs get_vocabulary.sentencepiece_model")
        return seqio.SentencePieceVocabulary(sp_model, extra_ids=extra_ids)
    if kind == "hf":
        if not hf_path:
            raise ValueError("vocabulary kind 'hf' needs get_vocabulary.hf_tokenizer (a tokenizer.json)")
        # The one HF vocabulary, imported only when asked (its package imports jax).
        from next_jax.models.hf_vocab import HfTokenizerVocabulary

        return HfTokenizerVocabulary(hf_path, eos_token=hf_eos, extra_ids=extra_ids)
    raise ValueError(f"unknown vocabulary kind {kind!r}; expected byte, sentencepiece or hf")


class GinVocabulary(seqio.Vocabulary):
    """Delegates to the gin-selected vocabulary, resolved lazily on every access."""

    def __init__(self) -> None:
        super().__init__(extra_ids=0)

    @property
    def resolved(self) -> seqio.Vocabulary:
        return get_vocabulary()

    @property
    def eos_id(self) -> int | None:
        return self.resolved.eos_id

    @property
    def unk_id(self) -> int | None:
        return self.resolved.unk_id

    @property
    def pad_id(self) -> int:
        return self.resolved.pad_id

    @property
    def extra_ids(self) -> int:
        return self.resolved.extra_ids

    @property
    def vocab_size(self) -> int:
        return self.resolved.vocab_size

    @property
    def _base_vocab_size(self) -> int:
        return self.resolved.vocab_size - self.resolved.extra_ids

    def _encode(self, s: str) -> Sequence[int]:
        return self.resolved.encode(s)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.resolved.decode(ids)

    def decode(self, ids) -> str:
        return self.resolved.decode(ids)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        return self.resolved.encode_tf(s)

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        return self.resolved.decode_tf(ids)

    def decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        return self.resolved.decode_tf(ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GinVocabulary) or self.resolved == other

    def __hash__(self) -> int:
        return hash(GinVocabulary)


def output_features(vocabulary: seqio.Vocabulary | None = None) -> dict[str, seqio.Feature]:
    """Decoder-only repair features: the prompt as `inputs` (prefix, no loss) and the answer as `targets`."""
    vocab = vocabulary or GinVocabulary()
    return {
        "inputs": seqio.Feature(vocab, add_eos=False, required=False),
        "targets": seqio.Feature(vocab, add_eos=True),
    }

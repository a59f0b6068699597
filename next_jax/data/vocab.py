"""A SeqIO vocabulary over a Hugging Face `tokenizers` tokenizer.json (for models imported from the Hub).

This is the one module of `next_jax.data` that imports seqio/TensorFlow; nothing else in the package imports
it, so data code stays importable without TensorFlow. Token ids are the tokenizer's own (so they match an
imported checkpoint's embedding table); SeqIO pads with id 0, which in most HF vocabularies is a real token,
so padded positions must be read through the feature converter's loss weights / segment ids, never decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import seqio
import tensorflow as tf
import tokenizers


class HfTokenizerVocabulary(seqio.Vocabulary):
    """`seqio.Vocabulary` backed by `tokenizers.Tokenizer.from_file(path)`; no special tokens are added."""

    def __init__(self, path: str | Path, eos_token: str | None = None, extra_ids: int = 0) -> None:
        self._path = str(path)
        self._tok = tokenizers.Tokenizer.from_file(self._path)
        self._eos = self._tok.token_to_id(eos_token) if eos_token is not None else None
        if eos_token is not None and self._eos is None:
            raise ValueError(f"eos token {eos_token!r} is not in {self._path}")
        super().__init__(extra_ids=extra_ids)

    @property
    def eos_id(self) -> int | None:
        return self._eos

    @property
    def unk_id(self) -> int | None:
        return None

    @property
    def _base_vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def _encode(self, s: str) -> Sequence[int]:
        return self._tok.encode(s, add_special_tokens=False).ids

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        def enc(b) -> np.ndarray:
            b = b.item() if isinstance(b, np.ndarray) else b  # a 0-d array in graph mode, bytes in eager
            return np.asarray(self._encode(b.decode("utf-8")), dtype=np.int32)

        out = tf.numpy_function(enc, [s], tf.int32, stateful=False)
        out.set_shape([None])
        return out

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        def dec(arr: np.ndarray) -> np.ndarray:
            if arr.ndim == 1:
                return np.asarray(self._decode(arr.tolist()).encode("utf-8"), dtype=object)
            return np.asarray([self._decode(row.tolist()).encode("utf-8") for row in arr], dtype=object)

        out = tf.numpy_function(dec, [ids], tf.string, stateful=False)
        out.set_shape(ids.shape[:-1])
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HfTokenizerVocabulary) and (self._path, self._eos) == (
            other._path,
            other._eos,
        )

    def __hash__(self) -> int:
        return hash((self._path, self._eos))

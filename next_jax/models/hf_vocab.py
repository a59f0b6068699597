"""seqio vocabularies for HF checkpoints: `tokenizer.json` (HF `tokenizers`) or `tokenizer.model` (SentencePiece)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import seqio
import tensorflow as tf
import tokenizers


def _token_id(tokenizer: tokenizers.Tokenizer, token: Any) -> int | None:
    """Id of a special token given as a string or as tokenizer_config's `{"content": ...}` dict."""
    if isinstance(token, dict):
        token = token.get("content")
    return None if token is None else tokenizer.token_to_id(token)


class HfTokenizerVocabulary(seqio.Vocabulary):
    """A `seqio.Vocabulary` over an HF `tokenizer.json` (byte-level BPE of Llama 3, Qwen2, ...).

    Encoding adds no special tokens (seqio appends EOS itself). Decoding drops special tokens. The TF ops run
    the same Python tokenizer through `tf.numpy_function`, so they work inside tf.data pipelines but are not
    serialisable into a SavedModel. Special ids come from the arguments, else `tokenizer_config.json`
    next to the file, else the model's `config.json`. ``eos_token`` names the EOS token by its text instead.
    """

    def __init__(
        self,
        tokenizer_file: str | Path,
        *,
        eos_id: int | None = None,
        bos_id: int | None = None,
        unk_id: int | None = None,
        pad_id: int | None = None,
        eos_token: str | None = None,
        extra_ids: int = 0,
    ):
        self.tokenizer_file = str(tokenizer_file)
        self._tokenizer = tokenizers.Tokenizer.from_file(self.tokenizer_file)
        folder = Path(tokenizer_file).parent
        special = self._read_json(folder / "tokenizer_config.json")
        model_config = self._read_json(folder / "config.json")

        def pick(given: int | None, key: str) -> int | None:
            if given is not None:
                return given
            found = _token_id(self._tokenizer, special.get(f"{key}_token"))
            if found is None:
                found = model_config.get(f"{key}_token_id")
                found = found[0] if isinstance(found, list) else found
            return found

        if eos_token is not None:  # named by its text (e.g. from gin): it must exist
            eos_id = self._tokenizer.token_to_id(eos_token)
            if eos_id is None:
                raise ValueError(f"eos token {eos_token!r} is not in {self.tokenizer_file}")
        self._eos_id = pick(eos_id, "eos")
        self._bos_id = pick(bos_id, "bos")
        self._unk_id = pick(unk_id, "unk")
        pad = pick(pad_id, "pad")
        # seqio's feature converters pad with 0; keep that convention when the tokenizer names no pad token.
        self._pad_id = 0 if pad is None else pad
        super().__init__(extra_ids=extra_ids)

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def tokenizer(self) -> tokenizers.Tokenizer:
        return self._tokenizer

    @property
    def eos_id(self) -> int | None:
        return self._eos_id

    @property
    def bos_id(self) -> int | None:
        return self._bos_id

    @property
    def unk_id(self) -> int | None:
        return self._unk_id

    @property
    def pad_id(self) -> int:
        return self._pad_id

    @property
    def _base_vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def _encode(self, s: str) -> Sequence[int]:
        return self._tokenizer.encode(s, add_special_tokens=False).ids

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def _until_eos(self, ids: Sequence[int]) -> list[int]:
        """Ids before the first EOS (seqio's decode_tf overwrites what follows EOS with pad ids)."""
        ids = [int(i) for i in ids]
        return ids[: ids.index(self.eos_id)] if self.eos_id in ids else ids

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        def encode(text: np.ndarray | bytes) -> np.ndarray:
            text = text.item() if isinstance(text, np.ndarray) else text  # 0-d array in a graph, bytes in a dataset
            return np.asarray(self._encode(text.decode("utf-8")), dtype=np.int32)

        ids = tf.numpy_function(encode, [s], tf.int32, stateful=False)
        ids.set_shape([None])
        return ids

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        def decode(batch: np.ndarray) -> np.ndarray:
            rows = batch.reshape(-1, batch.shape[-1]) if batch.ndim else batch.reshape(1, 1)
            texts = [self._decode(self._until_eos(row)).encode("utf-8") for row in rows]
            return np.asarray(texts, dtype=object).reshape(batch.shape[:-1])

        out = tf.numpy_function(decode, [tf.cast(ids, tf.int32)], tf.string, stateful=False)
        out.set_shape(ids.shape[:-1])
        return out

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HfTokenizerVocabulary)
            and self._tokenizer.to_str() == other._tokenizer.to_str()
            and (self.eos_id, self.bos_id, self.pad_id, self.extra_ids)
            == (other.eos_id, other.bos_id, other.pad_id, other.extra_ids)
        )

    def __hash__(self) -> int:
        return hash((self.tokenizer_file, self.eos_id, self.extra_ids))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tokenizer"] = self._tokenizer.to_str()  # the Rust object itself does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_tokenizer"] = tokenizers.Tokenizer.from_str(state["_tokenizer"])
        self.__dict__.update(state)


def load_vocabulary(path: str | Path, *, prefer: str = "sentencepiece") -> seqio.Vocabulary | None:
    """The vocabulary of an HF checkpoint folder, or None if it has no tokenizer file.

    Gemma and Llama 2 ship both files; `prefer` ('sentencepiece' or 'json') picks one.
    """
    path = Path(path)
    sp, js = path / "tokenizer.model", path / "tokenizer.json"
    if sp.exists() and (prefer == "sentencepiece" or not js.exists()):
        return seqio.SentencePieceVocabulary(str(sp))
    if js.exists():
        return HfTokenizerVocabulary(js)
    return None

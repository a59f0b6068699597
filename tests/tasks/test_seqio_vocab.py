"""Vocabularies from gin: byte (default), a SentencePiece model trained here, an HF tokenizer.json built here."""

from __future__ import annotations

import gin
import numpy as np
import pytest
import sentencepiece as spm
import seqio
import tensorflow as tf
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from next_jax.data.synthetic import generate_synthetic
from next_jax.models.hf_vocab import HfTokenizerVocabulary
from tasks.vocabularies import get_vocabulary

LENGTHS = {"inputs": 3072, "targets": 512}


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    exs = generate_synthetic(60, "train", seed=11)
    return [e.description + "\n" + e.buggy_code + "\n" + "\n".join(e.tests) for e in exs]


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory, corpus) -> str:
    prefix = tmp_path_factory.mktemp("sp") / "tiny"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 3),
        model_prefix=str(prefix),
        vocab_size=400,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return str(prefix) + ".model"


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory, corpus) -> str:
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=["<pad>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


def _first_batch(name="next_synthetic"):
    ds = seqio.get_dataset(
        name,
        task_feature_lengths=LENGTHS,
        dataset_split="train",
        shuffle=False,
        feature_converter=seqio.DecoderFeatureConverter(pack=False),
        batch_size=1,
    )
    return next(ds.as_numpy_iterator())


def _decoded_target(batch, vocab) -> str:
    ids = batch["decoder_target_tokens"][0][batch["decoder_loss_weights"][0] > 0].tolist()
    assert ids[-1] == vocab.eos_id
    return vocab.decode(ids[:-1])


def test_default_is_bytes():
    assert isinstance(get_vocabulary(), seqio.ByteVocabulary)
    b = _first_batch()
    assert "Fixed program:\n```python\ndef " in _decoded_target(b, get_vocabulary())


def test_sentencepiece_from_gin(repair_gin, sp_model):
    gin.parse_config(
        repair_gin
        + ["get_vocabulary.kind = 'sentencepiece'", f"get_vocabulary.sentencepiece_model = '{sp_model}'"]
    )
    vocab = get_vocabulary()
    assert isinstance(vocab, seqio.SentencePieceVocabulary) and vocab.vocab_size == 400
    b = _first_batch()
    assert "def " in _decoded_target(b, vocab)
    # fewer tokens than bytes: the budget is counted in this vocabulary's tokens
    assert (b["decoder_target_tokens"] > 0).sum() < (_first_batch_bytes() > 0).sum()


def _first_batch_bytes():
    with gin.unlock_config():
        gin.bind_parameter("get_vocabulary.kind", "byte")
    return _first_batch()["decoder_target_tokens"]


def test_hf_tokenizer_vocabulary(repair_gin, hf_tokenizer):
    vocab = HfTokenizerVocabulary(hf_tokenizer, eos_token="</s>")
    text = "def f(xs):\n    return [x * 2 for x in xs]  # é\n"
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text and vocab.eos_id == 1 and vocab.vocab_size == 500
    tf_ids = vocab.encode_tf(tf.constant(text)).numpy().tolist()
    assert tf_ids == list(ids)
    assert vocab.decode_tf(tf.constant([ids + [vocab.eos_id]])).numpy()[0].decode().startswith(text)
    with pytest.raises(ValueError):
        HfTokenizerVocabulary(hf_tokenizer, eos_token="<nope>")
    gin.parse_config(
        repair_gin
        + [
            "get_vocabulary.kind = 'hf'",
            f"get_vocabulary.hf_tokenizer = '{hf_tokenizer}'",
            "get_vocabulary.hf_eos_token = '</s>'",
        ]
    )
    b = _first_batch()
    assert "Fixed program:" in _decoded_target(b, get_vocabulary())
    assert np.all(b["decoder_target_tokens"] < 500)


def test_unknown_kind_is_an_error(repair_gin):
    gin.parse_config(repair_gin + ["get_vocabulary.kind = 'words'"])
    with pytest.raises(ValueError, match="unknown vocabulary kind"):
        get_vocabulary()

"""HF interop: tiny random Llama / Qwen2 / Gemma checkpoints built offline with transformers.

Import parity (float32 logits within 1e-4), export -> transformers load -> same logits, sharded
checkpoints, bf16 loading, tokenizers as seqio vocabularies.
"""

from __future__ import annotations

import io
import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

from next_jax.models.hf import load_pretrained, save_pretrained  # noqa: E402
from next_jax.models.hf_config import from_hf_config, to_hf_config  # noqa: E402

_COMMON = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
)
CASES = {
    "llama": lambda: transformers.LlamaConfig(**_COMMON, num_key_value_heads=2),
    # Llama 3.1 rope scaling, attention + MLP biases, head_dim not hidden / heads
    "llama3_bias": lambda: transformers.LlamaConfig(
        **_COMMON,
        num_key_value_heads=1,
        head_dim=16,
        attention_bias=True,
        mlp_bias=True,
        rope_parameters=dict(
            rope_type="llama3",
            rope_theta=500000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
    ),
    "qwen2": lambda: transformers.Qwen2Config(
        **_COMMON, num_key_value_heads=2, tie_word_embeddings=True, rope_parameters=dict(rope_theta=1e6)
    ),
    # the top layer attends through a 3-token sliding window
    "qwen2_window": lambda: transformers.Qwen2Config(
        **_COMMON, num_key_value_heads=2, use_sliding_window=True, sliding_window=3, max_window_layers=1
    ),
    "gemma": lambda: transformers.GemmaConfig(**_COMMON, num_key_value_heads=1, head_dim=16),
    # attention biases on all four projections; head_dim left to Gemma's class default (256)
    "gemma_bias": lambda: transformers.GemmaConfig(**_COMMON, num_key_value_heads=4, attention_bias=True),
}
CORPUS = ["def add(a, b):\n    return a + b\n", "print('hello world')", "for i in range(10): x += i"] * 20


def _tokenizer_json(folder) -> None:
    """A tiny byte-level BPE `tokenizer.json` + `tokenizer_config.json`, trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # alphabet = the corpus' characters only, so the vocabulary fits the tiny models' 128 embeddings
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<pad>", "<eos>", "<bos>"])
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<eos>", "bos_token": "<bos>", "pad_token": {"content": "<pad>"}})
    )


def _sentencepiece(folder) -> None:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=model,
        vocab_size=36,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
    )
    (folder / "tokenizer.model").write_bytes(model.getvalue())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (folder, torch model) for every case; every weight (norms, biases too) randomised."""
    out = {}
    for i, (name, make_config) in enumerate(CASES.items()):
        torch.manual_seed(i)
        config = make_config()
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        if name == "gemma":
            _sentencepiece(folder)
        elif name in ("llama", "qwen2"):
            _tokenizer_json(folder)
        out[name] = (folder, model)
    return out


def _torch_logits(model, tokens, attention_mask=None, position_ids=None) -> np.ndarray:
    args = dict(input_ids=torch.tensor(np.asarray(tokens)))
    if attention_mask is not None:
        args.update(
            attention_mask=torch.tensor(np.asarray(attention_mask)),
            position_ids=torch.tensor(np.asarray(position_ids)),
        )
    with torch.no_grad():
        return model(**args).logits.numpy()


TOKENS = np.random.RandomState(0).randint(0, 128, (2, 11)).astype(np.int32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_imported_logits_match_transformers(checkpoints, name):
    folder, reference = checkpoints[name]
    model, _ = load_pretrained(folder)
    expected = _torch_logits(reference, TOKENS)
    got = np.asarray(model(jnp.asarray(TOKENS)))
    diff = np.abs(got - expected).max()
    print(f"{name}: max |logits - transformers| = {diff:.2e}")
    assert diff < 1e-4


@pytest.mark.parametrize("name", ["llama", "gemma"])
def test_left_padded_batch_matches_transformers_with_attention_mask(checkpoints, name):
    folder, reference = checkpoints[name]
    model, _ = load_pretrained(folder, with_vocab=False)
    mask = np.ones_like(TOKENS)
    mask[1, :4] = 0
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    expected = _torch_logits(reference, TOKENS, mask, positions)
    got = np.asarray(
        model(jnp.asarray(TOKENS), positions=jnp.asarray(positions), segment_ids=jnp.asarray(mask))
    )
    assert np.abs(got - expected)[mask.astype(bool)].max() < 1e-4


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_loads_in_transformers_with_the_same_logits(checkpoints, tmp_path, name):
    folder, reference = checkpoints[name]
    model, vocab = load_pretrained(folder)
    save_pretrained(model, tmp_path, vocab=vocab)
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert type(exported) is type(reference)
    assert exported.dtype == torch.float32
    np.testing.assert_allclose(_torch_logits(exported, TOKENS), _torch_logits(reference, TOKENS), atol=1e-5)
    assert from_hf_config(json.loads((tmp_path / "config.json").read_text())) == model.config


def test_sharded_checkpoint_round_trip(checkpoints, tmp_path):
    model, _ = load_pretrained(checkpoints["qwen2"][0], with_vocab=False)
    save_pretrained(model, tmp_path, max_shard_bytes=20_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    files = set(index["weight_map"].values())
    assert len(files) > 2 and all((tmp_path / f).exists() for f in files)
    again, vocab = load_pretrained(tmp_path)
    assert vocab is None
    for a, b in zip(nnx.to_flat_state(nnx.state(model)), nnx.to_flat_state(nnx.state(again)), strict=True):
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1].get_value(), b[1].get_value())


def test_bfloat16_load_and_export(checkpoints, tmp_path):
    folder, reference = checkpoints["llama"]
    model, _ = load_pretrained(folder, dtype=jnp.bfloat16, with_vocab=False)
    assert model.layers[0].attn.q.get_value().dtype == jnp.bfloat16
    got, expected = np.asarray(model(jnp.asarray(TOKENS))), _torch_logits(reference, TOKENS)
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
    save_pretrained(model, tmp_path)
    exported = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, dtype="auto", attn_implementation="eager"
    )
    assert exported.dtype == torch.bfloat16
    exported_logits = _torch_logits(exported.float(), TOKENS)
    assert np.abs(exported_logits - expected).max() < 0.05 * np.abs(expected).max()


def test_hf_tokenizer_json_becomes_a_seqio_vocabulary(checkpoints, tmp_path):
    import pickle

    import seqio
    import tensorflow as tf

    model, vocab = load_pretrained(checkpoints["llama"][0])
    assert isinstance(vocab, seqio.Vocabulary)
    assert (vocab.eos_id, vocab.bos_id, vocab.pad_id) == (1, 2, 0)
    assert vocab.vocab_size <= model.config.vocab_size
    text = "def add(a, b):\n    return a + b"
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text and vocab.eos_id not in ids
    assert vocab.decode([*ids, vocab.eos_id, *ids]) == text  # decoding stops at EOS
    assert vocab.encode_tf(tf.constant(text)).numpy().tolist() == list(ids)
    batch = tf.constant([[*ids, vocab.eos_id, 5], [*ids, 0, 0]])
    assert [t.decode() for t in vocab.decode_tf(batch).numpy()] == [text, text + vocab.decode([0, 0])]
    assert pickle.loads(pickle.dumps(vocab)) == vocab
    save_pretrained(model, tmp_path, vocab=vocab)
    assert (tmp_path / "tokenizer.json").exists() and (tmp_path / "tokenizer_config.json").exists()
    assert load_pretrained(tmp_path)[1] == vocab


def test_sentencepiece_tokenizer_becomes_seqio_sentencepiece_vocabulary(checkpoints):
    import seqio

    _, vocab = load_pretrained(checkpoints["gemma"][0])
    assert isinstance(vocab, seqio.SentencePieceVocabulary)
    assert vocab.eos_id == 1 and vocab.decode(vocab.encode("print('hello world')")) == "print('hello world')"


@pytest.mark.parametrize("name", sorted(CASES))
def test_hf_config_round_trip(checkpoints, name):
    config = from_hf_config(json.loads((checkpoints[name][0] / "config.json").read_text()))
    assert from_hf_config(to_hf_config(config)) == config


def test_config_details_are_read_as_transformers_reads_them(checkpoints):
    read = {n: from_hf_config(json.loads((checkpoints[n][0] / "config.json").read_text())) for n in CASES}
    assert read["llama3_bias"].rope_scaling == "llama3" and read["llama3_bias"].head_dim == 16
    assert read["llama3_bias"].qkv_bias and read["llama3_bias"].out_bias and read["llama3_bias"].mlp_bias
    assert read["qwen2"].qkv_bias and not read["qwen2"].out_bias and read["qwen2"].tie_embeddings
    assert read["qwen2_window"].layer_windows == (0, 3)
    assert (
        read["gemma"].norm == "rms_plus_one"
        and read["gemma"].embed_scale
        and read["gemma"].activation == "geglu"
    )
    assert read["gemma_bias"].head_dim == 256 and read["gemma_bias"].qkv_bias and read["gemma_bias"].out_bias


def test_unsupported_or_inconsistent_checkpoints_are_rejected(checkpoints, tmp_path):
    with pytest.raises(ValueError):
        from_hf_config({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    folder = checkpoints["llama"][0]
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="lacks"):
        load_pretrained(tmp_path, with_vocab=False)
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match="unexpected tensor"):
        load_pretrained(tmp_path, with_vocab=False)
    palm = from_hf_config(config).replace(family="palm", parallel_block=True)
    with pytest.raises(ValueError):
        to_hf_config(palm)

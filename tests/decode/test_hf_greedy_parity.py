"""Greedy tokens from our sampler equal transformers' greedy `generate` on the same random checkpoint."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from next_jax.decode.sampler import Sampler  # noqa: E402
from next_jax.models.hf import load_pretrained  # noqa: E402

EOS, PAD, NEW_TOKENS = 2, 0, 16
PROMPTS = [[5, 17, 23, 42, 8, 61, 7, 90, 33], [11, 4, 120, 64, 9]]

_COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=128,
    bos_token_id=1,
    eos_token_id=EOS,
    pad_token_id=PAD,
    # A wide init makes the random model's next-token distributions peaked, so greedy choices are not
    # decided by float rounding differences between the two frameworks.
    initializer_range=0.35,
)
HF_MODELS = {
    "llama": lambda: transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**_COMMON, num_key_value_heads=2, rope_theta=10000.0)
    ),
    "qwen2": lambda: transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**_COMMON, num_key_value_heads=2, tie_word_embeddings=True)
    ),
    "gemma": lambda: transformers.GemmaForCausalLM(
        transformers.GemmaConfig(**_COMMON, num_key_value_heads=1, head_dim=16)
    ),
}


def hf_greedy(model, prompts: list[list[int]]) -> list[list[int]]:
    """transformers greedy generate on a left-padded batch; each row cut after its EOS."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            eos_token_id=EOS,
            pad_token_id=PAD,
        )
    rows = []
    for row in out[:, width:].tolist():
        rows.append(row[: row.index(EOS) + 1] if EOS in row else row)
    return rows


@pytest.mark.parametrize("family", sorted(HF_MODELS))
def test_greedy_matches_transformers_generate(family, tmp_path):
    torch.manual_seed(0)
    hf_model = HF_MODELS[family]().eval()
    hf_model.save_pretrained(tmp_path)
    model, _ = load_pretrained(tmp_path, with_vocab=False)
    assert model.config.family == family
    expected = hf_greedy(hf_model, PROMPTS)
    out = Sampler(model, eos_id=EOS, pad_id=PAD).sample(
        PROMPTS, num_samples=2, max_new_tokens=NEW_TOKENS, temperature=0.0
    )
    for i, want in enumerate(expected):
        for s in range(2):
            assert out.tokens[i, s, : out.lengths[i, s]].tolist() == want
    # The scores agree with transformers' log-softmax of the same tokens.
    seq = torch.tensor([PROMPTS[0] + expected[0]])
    with torch.no_grad():
        logits = hf_model(seq).logits[0, len(PROMPTS[0]) - 1 : -1].float()
    hf_logprobs = torch.log_softmax(logits, -1)[torch.arange(len(expected[0])), torch.tensor(expected[0])]
    np.testing.assert_allclose(out.logprobs[0, 0, : len(expected[0])], hf_logprobs.numpy(), atol=1e-4)

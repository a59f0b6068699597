"""Top-k / top-p / temperature filtering and per-row token choice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from next_jax.decode.sampling import NEG_INF, choose_tokens, filter_logits, top_k_mask, top_p_mask


def _kept(masked: jax.Array) -> list[set[int]]:
    return [set(np.flatnonzero(np.asarray(row) > NEG_INF / 2).tolist()) for row in masked]


def test_top_k_keeps_the_k_largest():
    logits = jnp.array([[0.1, 3.0, -1.0, 2.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    assert _kept(top_k_mask(logits, 2)) == [{1, 3}, {0, 1}]
    assert _kept(top_k_mask(logits, 0)) == [set(range(5))] * 2  # 0 = off


def test_top_p_keeps_smallest_set_reaching_p():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    logits = jnp.log(jnp.asarray(probs))
    assert _kept(top_p_mask(logits, 0.5)) == [{0}]  # 0.5 alone reaches 0.5
    assert _kept(top_p_mask(logits, 0.6)) == [{0, 1}]
    assert _kept(top_p_mask(logits, 0.81)) == [{0, 1, 2}]
    assert _kept(top_p_mask(logits, 1.0)) == [{0, 1, 2, 3}]
    assert _kept(top_p_mask(logits, 1e-6)) == [{0}]  # never empty


def test_top_p_matches_numpy_reference_on_random_rows():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 50)).astype(np.float32) * 2
    for p in (0.3, 0.9):
        got = _kept(top_p_mask(jnp.asarray(logits), p))
        for row, kept in zip(logits, got, strict=True):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            order = np.argsort(-probs)
            n = int(np.searchsorted(np.cumsum(probs[order]), p) + 1)
            assert kept == set(order[:n].tolist())


def test_temperature_scales_logits():
    logits = jnp.array([[1.0, 2.0, 4.0]])
    np.testing.assert_allclose(filter_logits(logits, temperature=0.5), logits * 2.0)


def test_choose_tokens_greedy_and_log_probs():
    logits = jnp.array([[0.0, 2.0, 1.0], [3.0, -1.0, 0.0]])
    keys = jax.random.split(jax.random.key(0), 2)
    tokens, log_probs = choose_tokens(keys, logits, temperature=0.0)
    assert tokens.tolist() == [1, 0]
    expected = jax.nn.log_softmax(logits)[jnp.arange(2), tokens]
    np.testing.assert_allclose(log_probs, expected, rtol=1e-6)


def test_choose_tokens_samples_within_top_k_with_model_frequencies():
    # Two rows with the same logits but different keys; many draws of the first row via vmap over keys.
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    n = 4000
    keys = jax.random.split(jax.random.key(1), n)
    batch = jnp.broadcast_to(logits, (n, 4))
    tokens, log_probs = choose_tokens(keys, batch, temperature=1.0, top_k=2)
    counts = np.bincount(np.asarray(tokens), minlength=4) / n
    assert counts[2] == counts[3] == 0
    # Renormalised over the top 2: 0.5/0.8 and 0.3/0.8.
    assert counts[0] == pytest.approx(0.625, abs=0.03)
    # Log-probs are the model's, not the filtered distribution's.
    np.testing.assert_allclose(np.unique(np.asarray(log_probs)), sorted(np.log([0.3, 0.5])), rtol=1e-5)


def test_choose_tokens_is_a_function_of_each_rows_key():
    logits = jax.random.normal(jax.random.key(2), (6, 40))
    keys = jax.random.split(jax.random.key(3), 6)
    full, _ = choose_tokens(keys, logits, temperature=1.0)
    part, _ = choose_tokens(keys[2:4], logits[2:4], temperature=1.0)
    assert full[2:4].tolist() == part.tolist()


def test_top_k_then_top_p_over_candidates():
    logits = jnp.log(jnp.array([0.05, 0.5, 0.15, 0.3]))
    n = 4000
    keys = jax.random.split(jax.random.key(4), n)
    tokens, _ = choose_tokens(keys, jnp.broadcast_to(logits, (n, 4)), temperature=1.0, top_k=3, top_p=0.6)
    counts = np.bincount(np.asarray(tokens), minlength=4) / n
    # top-3 = {1, 3, 2}; renormalised 0.526, 0.316, 0.158; top-p 0.6 keeps {1, 3}.
    assert counts[0] == counts[2] == 0
    assert counts[1] == pytest.approx(0.625, abs=0.03)


@pytest.mark.parametrize("top_k", [0, 5])
def test_choose_tokens_argmax_and_log_probs_with_and_without_top_k(top_k):
    """With top-k, the argmax and the log-normaliser come from the candidates; ties go to the lowest id."""
    logits = jnp.floor(jax.random.normal(jax.random.key(4), (16, 300)) * 2)  # many ties at the maximum
    keys = jax.random.split(jax.random.key(5), 16)
    tokens, log_probs = choose_tokens(keys, logits, temperature=0.0, top_k=top_k)
    assert tokens.tolist() == np.argmax(np.asarray(logits), axis=-1).tolist()
    expected = jax.nn.log_softmax(logits)[jnp.arange(16), tokens]
    np.testing.assert_allclose(log_probs, expected, rtol=1e-6, atol=1e-6)
    _, sampled_log_probs = choose_tokens(keys, logits, temperature=1.0, top_k=top_k)
    assert np.all(np.asarray(sampled_log_probs) <= 0)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.999999])
def test_top_p_on_a_large_vocabulary_equals_the_full_sort(p):
    """Rows longer than 2 * prefix take the top-k prefix when the nucleus closes inside it, else the full sort:
    the kept sets must equal the full sort's either way (peaked rows close early, flat rows need the fallback)."""
    rng = np.random.default_rng(1)
    peaked = rng.normal(size=(4, 3000)).astype(np.float32) * 6
    flat = rng.normal(size=(4, 3000)).astype(np.float32) * 0.1
    for logits in (peaked, flat, np.concatenate([peaked[:2], flat[:2]])):
        got = _kept(jax.jit(top_p_mask, static_argnames="prefix")(jnp.asarray(logits), p, prefix=64))
        want = _kept(top_p_mask(jnp.asarray(logits), p, prefix=10_000))  # 2 * prefix > vocab: full sort
        assert got == want

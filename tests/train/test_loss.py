"""Cross-entropy on target tokens with z-loss: values and the hand-written gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from next_jax.train.loss import add_sums, cross_entropy_sums, zero_sums


def reference(logits, targets, weights, z_loss):
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return jnp.sum((log_z - target_logit + z_loss * log_z**2) * weights)


@pytest.mark.parametrize("z_loss", [0.0, 1e-3])
def test_value_and_gradient_match_autodiff_reference(z_loss):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    logits = 3.0 * jax.random.normal(k1, (2, 6, 13))
    targets = jax.random.randint(k2, (2, 6), 0, 13)
    weights = (jax.random.uniform(k3, (2, 6)) > 0.4).astype(jnp.float32)
    sums = cross_entropy_sums(logits, targets, weights, z_loss=z_loss)
    np.testing.assert_allclose(sums.loss, reference(logits, targets, weights, z_loss), rtol=1e-6)
    np.testing.assert_allclose(sums.loss, sums.cross_entropy + sums.z_loss, rtol=1e-6)
    assert (sums.z_loss > 0) == (z_loss > 0)
    assert sums.weight == weights.sum()
    ours = jax.grad(lambda x: cross_entropy_sums(x, targets, weights, z_loss=z_loss).loss)(logits)
    theirs = jax.grad(lambda x: reference(x, targets, weights, z_loss))(logits)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_only_weighted_positions_count():
    logits = jax.random.normal(jax.random.key(1), (1, 4, 7))
    targets = jnp.array([[1, 2, 3, 4]])
    weights = jnp.array([[0.0, 0.0, 1.0, 1.0]])
    changed = targets.at[0, :2].set(jnp.array([6, 5]))  # change only the weight-0 targets
    a = cross_entropy_sums(logits, targets, weights)
    b = cross_entropy_sums(logits, changed, weights)
    assert a == b
    grad = jax.grad(lambda x: cross_entropy_sums(x, targets, weights).loss)(logits)
    assert np.all(np.asarray(grad[0, :2]) == 0) and np.any(np.asarray(grad[0, 2:]) != 0)


def test_accuracy_counts_argmax_hits_on_weighted_tokens():
    logits = jnp.array([[[0.0, 5.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    targets = jnp.array([[1, 1, 2]])
    sums = cross_entropy_sums(logits, targets, jnp.array([[1.0, 1.0, 0.0]]))
    assert float(sums.correct) == 1.0  # position 0 right, 1 wrong, 2 right but unweighted


def test_bf16_logits_are_scored_in_float32():
    logits = jax.random.normal(jax.random.key(2), (2, 3, 50)) * 4
    targets = jnp.zeros((2, 3), jnp.int32)
    w = jnp.ones((2, 3))
    low = cross_entropy_sums(logits.astype(jnp.bfloat16), targets, w)
    assert low.loss.dtype == jnp.float32
    np.testing.assert_allclose(low.loss, cross_entropy_sums(logits, targets, w).loss, rtol=2e-2)


def test_sums_accumulate():
    a = cross_entropy_sums(jnp.zeros((1, 2, 4)), jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2)))
    total = add_sums(add_sums(zero_sums(), a), a)
    np.testing.assert_allclose(total.loss, 2 * a.loss)
    assert float(total.weight) == 4.0

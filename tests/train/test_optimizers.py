"""Optimizer and schedule factories, including their gin bindings."""

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from next_jax.train.optimizers import learning_rate_at, make_optimizer, make_schedule


def test_schedules():
    assert learning_rate_at(make_schedule("constant", peak_value=0.1), 500) == pytest.approx(0.1)
    warm = make_schedule("warmup_constant", peak_value=1.0, warmup_steps=10)
    assert learning_rate_at(warm, 0) == 0.0 and learning_rate_at(warm, 5) == pytest.approx(0.5)
    assert learning_rate_at(warm, 50) == pytest.approx(1.0)
    cos = make_schedule("warmup_cosine", peak_value=1.0, warmup_steps=10, total_steps=110, end_value=0.1)
    assert learning_rate_at(cos, 10) == pytest.approx(1.0)
    assert learning_rate_at(cos, 60) == pytest.approx(0.55, abs=1e-3)
    assert learning_rate_at(cos, 110) == pytest.approx(0.1)
    lin = make_schedule("warmup_linear", peak_value=1.0, warmup_steps=10, total_steps=110)
    assert learning_rate_at(lin, 60) == pytest.approx(0.5)
    rsqrt = make_schedule("rsqrt", peak_value=0.01, warmup_steps=100)
    assert learning_rate_at(rsqrt, 50) == pytest.approx(0.01)
    assert learning_rate_at(rsqrt, 400) == pytest.approx(0.005)
    with pytest.raises(ValueError):
        make_schedule("nope")


def _one_update(opt, params, grads):
    state = opt.init(params)
    updates, _ = opt.update(grads, state, params)
    return optax.apply_updates(params, updates)


def test_adamw_and_adafactor_step_against_the_gradient():
    params = {"w": jnp.ones((256, 256)), "b": jnp.ones((8,))}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    for name in ("adamw", "adafactor"):
        new = _one_update(make_optimizer(name, 1e-2), params, grads)
        assert all(
            np.all(np.asarray(n) < np.asarray(p))
            for n, p in zip(jax.tree.leaves(new), jax.tree.leaves(params), strict=True)
        )
    # Adafactor factors the 256x256 second moment into a row and a column vector.
    state = make_optimizer("adafactor", 1e-2).init(params)
    shapes = {x.shape for x in jax.tree.leaves(state)}
    assert (256,) in shapes and (256, 256) not in shapes
    with pytest.raises(ValueError):
        make_optimizer("sgd", 1.0)


def _two_updates(opt, grads_seq):
    params = {"w": jnp.zeros((4,))}
    state = opt.init(params)
    out = []
    for g in grads_seq:
        updates, state = opt.update({"w": g}, state, params)
        out.append(np.asarray(updates["w"]))
    return out


def test_gradient_clipping_rescales_to_max_norm():
    # Norms 200 and 2 both clip to norm 1, i.e. to the constant gradient 0.5 per entry.
    big, small = jnp.full((4,), 100.0), jnp.full((4,), 1.0)
    clipped = _two_updates(make_optimizer("adamw", 1.0, max_grad_norm=1.0, weight_decay=0.0), [big, small])
    constant = jnp.full((4,), 0.5)
    expected = _two_updates(make_optimizer("adamw", 1.0, weight_decay=0.0), [constant, constant])
    unclipped = _two_updates(make_optimizer("adamw", 1.0, weight_decay=0.0), [big, small])
    np.testing.assert_allclose(clipped[1], expected[1], rtol=1e-6)
    assert not np.allclose(unclipped[1], expected[1])


def test_gin_configures_optimizer_and_schedule():
    with gin.unlock_config():
        gin.parse_config(
            """
            make_schedule.kind = 'warmup_constant'
            make_schedule.peak_value = 0.5
            make_schedule.warmup_steps = 4
            make_optimizer.name = 'adamw'
            make_optimizer.weight_decay = 0.0
            """
        )
    try:
        schedule = make_schedule()
        assert learning_rate_at(schedule, 2) == pytest.approx(0.25)
        opt = make_optimizer()  # learning rate from the gin-bound schedule
        params = {"w": jnp.zeros((3,))}
        new = _one_update(opt, params, {"w": jnp.ones((3,))})
        # Adam's first step moves by lr(0) = 0 under a warmup from zero.
        np.testing.assert_allclose(new["w"], 0.0)
    finally:
        gin.clear_config()

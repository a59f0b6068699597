"""Run by test_sharding.py in a fresh process with 8 simulated CPU devices; prints one JSON report.

For every family: logits (full forward and prefill + decode steps) on a (fsdp=2, model=4) mesh with the
standard FSDP + tensor-parallel rules, against the same model on one device.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FAMILY_CONFIGS, make_random_model  # noqa: E402

from next_jax.models import partitioning  # noqa: E402
from next_jax.models.mesh import create_mesh  # noqa: E402
from next_jax.models.registry import build_model, get_preset  # noqa: E402


def spec(array: jax.Array) -> list:
    """An array's PartitionSpec as JSON: one entry per dimension, None / axis / list of axes."""
    entries = list(array.sharding.spec) + [None] * (array.ndim - len(array.sharding.spec))
    return [list(a) if isinstance(a, tuple) else a for a in entries]


def run(model, tokens, positions, segments, mesh=None):
    """Full logits and prefill(6) + two decode steps, all jitted."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def full(state):
        return nnx.merge(graphdef, state)(tokens, positions=positions, segment_ids=segments)

    @jax.jit
    def call(state, t, p, s, cache):
        return nnx.merge(graphdef, state)(t, positions=p, segment_ids=s, cache=cache)

    cache = model.init_cache(tokens.shape[0], 12)
    if mesh is not None:
        cache = jax.device_put(cache, cache.shardings(mesh))
    steps = []
    logits, cache = call(state, tokens[:, :6], positions[:, :6], segments[:, :6], cache)
    steps.append(logits)
    for t in (6, 7):
        logits, cache = call(state, tokens[:, t : t + 1], positions[:, t : t + 1], None, cache)
        steps.append(logits)
    out = full(state)
    return out, jnp.concatenate(steps, axis=1), cache


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    mesh = create_mesh(data=1, fsdp=2, model=4)
    rng = np.random.RandomState(0)
    tokens = jnp.asarray(rng.randint(1, 128, (4, 8)), jnp.int32)
    segments = jnp.asarray([[1] * 8, [0] * 2 + [1] * 6, [0] * 5 + [1] * 3, [1] * 8], jnp.int32)
    positions = jnp.maximum(jnp.cumsum(segments, axis=1) - 1, 0)
    valid = np.asarray(segments) != 0
    report = {}
    for family, config in FAMILY_CONFIGS.items():
        model = make_random_model(config)
        ref_full, ref_cached, _ = run(model, tokens, positions, segments)
        partitioning.shard_model(model, mesh)
        with partitioning.partitioned(mesh):
            out_full, out_cached, cache = run(model, tokens, positions, segments, mesh)
        layer = model.layers[0]
        report[family] = dict(
            full_diff=float(np.abs(np.asarray(out_full) - np.asarray(ref_full))[valid].max()),
            cached_diff=float(np.abs(np.asarray(out_cached) - np.asarray(ref_cached))[valid].max()),
            logits_spec=spec(out_full),
            q_spec=spec(layer.attn.q.get_value()),
            k_spec=spec(layer.attn.k.get_value()),
            gate_spec=spec(layer.mlp.gate.get_value()),
            embedding_spec=spec(model.embedder.embedding.get_value()),
            cache_k_spec=spec(cache.layers[0].k),
            q_shard_shape=list(layer.attn.q.get_value().addressable_shards[0].data.shape),
        )
    # Creating parameters in their shards gives the same values as creating them on one device.
    tiny = get_preset("tiny")
    plain = nnx.state(build_model(tiny, seed=1), nnx.Param)
    sharded = nnx.state(build_model(tiny, seed=1, mesh=mesh), nnx.Param)
    report["create_sharded"] = dict(
        max_diff=max(
            float(np.abs(np.asarray(a) - np.asarray(b)).max())
            for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sharded), strict=True)
        ),
        gate_spec=spec(jax.tree.leaves(sharded["layers"][0]["mlp"]["gate"])[0]),
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()

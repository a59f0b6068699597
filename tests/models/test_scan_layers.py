"""`scan_layers`: stacked layer parameters run in one `lax.scan` compute the same function as the unrolled
decoder (logits, loss, gradients, cache), import/export HF checkpoints, and shard with a leading `layers`
axis. Also the `scan` attention kernel against the default one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AbstractMesh, PartitionSpec

from next_jax.models import attention, partitioning
from next_jax.models.cache import full_mask
from next_jax.models.decoder import Decoder
from next_jax.models.layer_stack import stack_layers, unstack_layers

TOKENS = jnp.asarray(np.random.RandomState(3).randint(1, 128, (2, 9)), jnp.int32)


def scanned_copy(model: Decoder, **changes) -> Decoder:
    """The same parameters as `model` in the stacked layout of a `scan_layers` config."""
    config = model.config.replace(scan_layers=True, **changes)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0))))
    flat = {p: v.get_value() for p, v in nnx.to_flat_state(nnx.state(model))}
    stacked = stack_layers(flat, config.num_layers)
    target = dict(nnx.to_flat_state(abstract))
    assert set(stacked) == set(target)
    state = nnx.from_flat_state([(p, v.replace(jnp.asarray(stacked[p]))) for p, v in target.items()])
    return nnx.merge(graphdef, state)


def _loss(model: Decoder) -> jax.Array:
    logits = model(TOKENS[:, :-1])
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), TOKENS[:, 1:, None], axis=-1).mean()


@pytest.mark.parametrize("family", ["palm", "llama", "qwen2", "gemma"])
@pytest.mark.parametrize("remat", [False, True])
def test_scan_matches_unrolled_logits_loss_and_gradients(family_configs, random_model, family, remat):
    plain = random_model(family_configs[family].replace(num_layers=3, remat=remat))
    scanned = scanned_copy(plain)
    assert isinstance(scanned.layers.attn.q.get_value(), jax.Array)
    np.testing.assert_allclose(scanned(TOKENS), plain(TOKENS), atol=2e-5)
    (l1, g1), (l2, g2) = (nnx.jit(nnx.value_and_grad(_loss))(m) for m in (plain, scanned))
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    flat1 = {p: v.get_value() for p, v in nnx.to_flat_state(g1)}
    flat2 = unstack_layers({p: v.get_value() for p, v in nnx.to_flat_state(g2)}, 3)
    assert set(flat1) == set(flat2)
    for p in flat1:
        np.testing.assert_allclose(flat1[p], flat2[p], atol=1e-5, err_msg=str(p))


def test_scan_with_per_layer_sliding_windows_matches_unrolled(family_configs, random_model):
    config = family_configs["qwen2"].replace(num_layers=3, layer_windows=(0, 3, 0))
    plain = random_model(config)
    np.testing.assert_allclose(scanned_copy(plain)(TOKENS), plain(TOKENS), atol=2e-5)
    # the windows matter here, so the scan really applies each layer's own mask
    unwindowed = random_model(config.replace(layer_windows=()))(TOKENS)
    assert np.abs(np.asarray(plain(TOKENS)) - np.asarray(unwindowed)).max() > 1e-3


def test_scanned_model_prefill_and_decode_match_unrolled(family_configs, random_model):
    plain = random_model(family_configs["llama"])
    scanned = scanned_copy(plain)
    outs = []
    for model in (plain, scanned):
        cache = model.init_cache(2, 12)
        logits, cache = model(TOKENS[:, :8], cache=cache)
        step, cache = model(TOKENS[:, 8:9], cache=cache)
        outs.append((np.asarray(logits), np.asarray(step)))
    np.testing.assert_allclose(outs[1][0], outs[0][0], atol=2e-5)
    np.testing.assert_allclose(outs[1][1], outs[0][1], atol=2e-5)


def test_stacked_parameters_shard_with_a_leading_layers_axis(family_configs):
    config = family_configs["llama"].replace(scan_layers=True, num_layers=3)
    state = nnx.state(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0))))
    mesh = AbstractMesh((1, 2, 4), ("data", "fsdp", "model"))
    specs = partitioning.partition_specs(state, mesh, partitioning.STANDARD_RULES)
    q = specs["layers"]["attn"]["q"]
    assert q.get_metadata()["out_sharding"] == ("layers", "embed", "heads", "kv")
    assert q.get_value() == PartitionSpec(None, "fsdp", "model", None)
    assert specs["layers"]["mlp"]["down"].get_value() == PartitionSpec(None, "model", "fsdp")
    assert specs["embedder"]["embedding"].get_value() == PartitionSpec("model", "fsdp")
    # a rule for `layers` is honoured like any other (e.g. pipeline stages over a mesh axis)
    rules = (("layers", "data"), *partitioning.STANDARD_RULES)
    three_stages = AbstractMesh((3, 1, 1), ("data", "fsdp", "model"))
    q_spec = partitioning.partition_specs(state, three_stages, rules)["layers"]["attn"]["q"].get_value()
    assert q_spec == PartitionSpec("data", "fsdp", "model", None)


@pytest.mark.parametrize("segments", [False, True])
def test_scan_attention_matches_blocked_attention_and_gradients(segments):
    rng = np.random.RandomState(0)
    b, length, heads, groups, d = 2, 2 * attention.QUERY_BLOCK, 2, 2, 8
    q = jnp.asarray(rng.standard_normal((b, length, heads * groups, d)), jnp.float32)
    k, v = (jnp.asarray(rng.standard_normal((b, length, heads, d)), jnp.float32) for _ in range(2))
    segment_ids = jnp.asarray(np.repeat([[1, 2]], length // 2, axis=1).repeat(b, 0)) if segments else None
    mask = full_mask(length, segment_ids, None, 0, b)

    def run(fn):
        def f(q, k, v):
            return jnp.sum(jnp.sin(fn(q, k, v, mask, d**-0.5, attention.QUERY_BLOCK)))

        return jax.value_and_grad(f, argnums=(0, 1, 2))(q, k, v)

    (want, want_grads) = run(attention._attend_causal_blocks)
    (got, got_grads) = run(attention._attend_query_scan)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, e in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["llama", "qwen2_window"])
def test_hf_import_and_export_through_the_stacked_layout(tmp_path, name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from test_hf import CASES

    from next_jax.models.hf import load_pretrained, save_pretrained

    torch.manual_seed(0)
    reference = transformers.AutoModelForCausalLM.from_config(
        CASES[name](), dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.1 * torch.randn_like(p))
    reference.save_pretrained(tmp_path / "in")
    model, _ = load_pretrained(tmp_path / "in", with_vocab=False, config_overrides=dict(scan_layers=True))
    assert model.config.scan_layers and model.layers.attn.q.get_value().shape[0] == model.config.num_layers
    tokens = np.asarray(TOKENS)
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(tokens)).logits.numpy()
    np.testing.assert_allclose(np.asarray(model(TOKENS)), expected, atol=1e-4)
    save_pretrained(model, tmp_path / "out")
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager")
    with torch.no_grad():
        got = exported.eval()(input_ids=torch.tensor(tokens)).logits.numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

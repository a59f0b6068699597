"""The Trainer: learning, target-only loss, microbatching, bf16 activations, donation, checkpoints,
metrics, starting from a converted HF checkpoint."""

import io
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from train_fixtures import TINY, make_batch

from next_jax.models.decoder import Decoder
from next_jax.train import checkpoints
from next_jax.train.metric_writers import ConsoleWriter, MultiWriter, TensorBoardWriter
from next_jax.train.optimizers import make_optimizer
from next_jax.train.train_step import make_loss_fn
from next_jax.train.trainer import Trainer

HERE = os.path.dirname(__file__)


def new_trainer(config=TINY, seed=0, **kwargs) -> Trainer:
    kwargs.setdefault("optimizer", make_optimizer("adamw", 3e-3, weight_decay=0.0))
    kwargs.setdefault("learning_rate", 3e-3)
    kwargs.setdefault("peak_flops", 1e12)
    return Trainer(Decoder(config, rngs=nnx.Rngs(seed)), **kwargs)


@pytest.fixture(scope="module")
def trained():
    """A trainer after 25 AdamW steps on one batch, with the metrics of every step."""
    trainer = new_trainer()
    batch = make_batch(0)
    history = [trainer.train_step(batch) for _ in range(25)]
    return trainer, batch, history


def test_loss_falls_when_fitting_one_batch(trained):
    _, _, history = trained
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["accuracy"] > history[0]["accuracy"]
    assert history[0]["target_tokens"] == make_batch(0)["decoder_loss_weights"].sum()


def test_adafactor_t5x_default_also_learns():
    trainer = new_trainer(optimizer=make_optimizer("adafactor", 1e-2), learning_rate=1e-2)
    batch = make_batch(1)
    first = trainer.train_step(batch)["loss"]
    for _ in range(15):
        last = trainer.train_step(batch)["loss"]
    assert last < 0.8 * first


def test_step_metrics_include_throughput_and_mfu(trained):
    trainer, batch, history = trained
    m = history[-1]
    for key in (
        "loss",
        "accuracy",
        "grad_norm",
        "learning_rate",
        "tokens_per_s",
        "tflops",
        "mfu",
        "step_time_s",
    ):
        assert np.isfinite(m[key]), key
    assert m["tokens_per_s"] == pytest.approx(batch["decoder_input_tokens"].size / m["step_time_s"])
    expected_tflops = trainer.step_flops(8, 16) / m["step_time_s"] / 1e12
    assert m["tflops"] == pytest.approx(expected_tflops)
    assert m["mfu"] == pytest.approx(m["tflops"] * 1e12 / trainer.peak_flops)
    assert m["learning_rate"] == pytest.approx(3e-3)


def test_loss_counts_target_tokens_only(trained):
    trainer, batch, _ = trained
    graphdef, state = nnx.split(trainer.model(), nnx.Param)
    loss_fn = make_loss_fn(graphdef, state, nnx.State({}), z_loss=0.0)
    params = trainer.state.params
    changed = dict(batch)
    targets = batch["decoder_target_tokens"].copy()
    unweighted = batch["decoder_loss_weights"] == 0
    targets[unweighted] = (targets[unweighted] + 7) % TINY.vocab_size
    changed["decoder_target_tokens"] = targets
    (a, sums_a), (b, _) = loss_fn(params, batch), loss_fn(params, changed)
    assert float(a) == float(b)
    ga = jax.grad(lambda p: loss_fn(p, batch)[0])(params)
    gb = jax.grad(lambda p: loss_fn(p, changed)[0])(params)
    jax.tree.map(np.testing.assert_array_equal, ga, gb)
    weighted = batch["decoder_loss_weights"] > 0
    targets[weighted] = (targets[weighted] + 7) % TINY.vocab_size
    assert float(loss_fn(params, {**changed, "decoder_target_tokens": targets})[0]) != float(a)
    # eval_step reports the same mean loss without changing the parameters.
    before = jax.tree.map(np.asarray, trainer.state.params)
    assert trainer.eval_step(batch)["loss"] == pytest.approx(float(a) / float(sums_a.weight), rel=1e-5)
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, trainer.state.params))


def test_z_loss_is_reported_and_trained():
    trainer = new_trainer(z_loss=1e-2)
    m = trainer.train_step(make_batch(2))
    assert m["z_loss"] > 0
    assert m["loss"] == pytest.approx(m["cross_entropy"] + m["z_loss"], rel=1e-5)


def test_microbatch_accumulation_equals_full_batch():
    batch = make_batch(3, batch=8)
    whole, micro = new_trainer(), new_trainer(num_microbatches=4)
    for _ in range(2):
        m_whole, m_micro = whole.train_step(batch), micro.train_step(batch)
    assert m_micro["loss"] == pytest.approx(m_whole["loss"], rel=1e-5)
    assert m_micro["target_tokens"] == m_whole["target_tokens"]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), micro.state.params, whole.state.params
    )
    with pytest.raises(ValueError):
        micro.train_step(make_batch(3, batch=6))


def test_bf16_activations_with_float32_master_params():
    trainer = new_trainer(config=TINY.replace(dtype="bfloat16"))
    reference = new_trainer()  # same seed, float32 activations
    batch = make_batch(4)
    m16, m32 = trainer.train_step(batch), reference.train_step(batch)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(trainer.state.params))
    assert m16["loss"] == pytest.approx(m32["loss"], rel=2e-2)
    assert m16["loss"] != m32["loss"]  # the forward pass really ran in bf16


def test_step_donates_the_previous_state(trained):
    trainer, batch, _ = trained
    old_leaves = jax.tree.leaves(trainer.state)
    trainer.train_step(batch)
    assert all(x.is_deleted() for x in old_leaves)


def test_fit_logs_to_tensorboard_and_console_and_checkpoints(tmp_path):
    from test_metric_writers import read_scalars

    stream = io.StringIO()
    writer = MultiWriter(
        [TensorBoardWriter(str(tmp_path / "tb")), ConsoleWriter(4, print_every=2, stream=stream)]
    )
    trainer = new_trainer(checkpoint_dir=str(tmp_path / "ckpt"), save_every=3)
    batches = (make_batch(seed) for seed in range(100))
    final = trainer.fit(batches, num_steps=4, writer=writer)
    writer.close()
    trainer.close()
    assert trainer.step == 4
    scalars = read_scalars(str(tmp_path / "tb"))
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3, 4]
    assert scalars["mfu"][-1][1] == pytest.approx(final["mfu"], rel=1e-6)
    assert "step 4: " in stream.getvalue() and "tokens_per_s=" in stream.getvalue()
    assert checkpoints.CheckpointManager(tmp_path / "ckpt").all_steps() == [1, 3, 4]


def run_worker(tmp_path, name: str, *args: str) -> subprocess.CompletedProcess:
    out = tmp_path / f"{name}.npz"
    cmd = [sys.executable, os.path.join(HERE, "resume_worker.py"), "--out", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    crashed = run_worker(tmp_path, "crashed", "--checkpoint_dir", ckpt, "--steps", "8", "--crash_after", "6")
    assert crashed.returncode == 17, crashed.stderr[-2000:]
    assert not (tmp_path / "crashed.npz").exists()
    resumed = run_worker(tmp_path, "resumed", "--checkpoint_dir", ckpt, "--steps", "8")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = run_worker(tmp_path, "straight", "--steps", "8")
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "straight.npz")
    assert int(a["resumed"]) in (4, 6)  # the crash may have interrupted the save of step 6
    assert int(b["resumed"]) == -1
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        if name != "resumed":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_start_from_converted_hf_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from next_jax.models.hf import load_pretrained

    torch.manual_seed(0)
    hf_config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
    )
    hf_model = transformers.LlamaForCausalLM(hf_config).eval()
    hf_model.save_pretrained(tmp_path / "hf")
    converted, _ = load_pretrained(tmp_path / "hf", with_vocab=False)
    checkpoints.save_params(tmp_path / "converted", nnx.state(converted, nnx.Param).to_pure_dict())

    trainer = new_trainer(config=converted.config, seed=123)  # random init, then replaced
    trainer.load_params(str(tmp_path / "converted"))
    assert trainer.step == 0
    batch = make_batch(5, batch=2, length=12)
    tokens = torch.tensor(batch["decoder_input_tokens"].astype(np.int64))
    with torch.no_grad():
        logits = hf_model(tokens, attention_mask=torch.tensor(batch["decoder_segment_ids"])).logits
    logp = torch.log_softmax(logits.float(), -1)
    targets = torch.tensor(batch["decoder_target_tokens"].astype(np.int64))
    nll = -logp.gather(-1, targets[..., None])[..., 0].numpy()
    weights = batch["decoder_loss_weights"]
    expected = float((nll * weights).sum() / weights.sum())
    assert trainer.eval_step(batch)["loss"] == pytest.approx(expected, rel=1e-4)
    # ...and it trains from there.
    first = trainer.train_step(batch)["loss"]
    assert first == pytest.approx(expected, rel=1e-4)
    assert trainer.train_step(batch)["loss"] < first


def test_model_snapshot_survives_further_training(trained):
    """`model()` copies the parameters, so a sampler built from it keeps working after more steps."""
    trainer, batch, _ = trained
    model = trainer.model()
    tokens = jnp.asarray(batch["decoder_input_tokens"][:1])
    before = np.asarray(model(tokens))
    trainer.train_step(batch)
    np.testing.assert_array_equal(np.asarray(model(tokens)), before)
    assert not np.array_equal(np.asarray(trainer.model()(tokens)), before)


def test_schedule_per_run_decays_to_its_end_on_every_runs_last_step():
    """Each run begun by `restart(num_steps=N)` gets the gin schedule over N steps (a 6-step pretraining
    and two 3-step fine-tunes here); the step of a run length is compiled once, and a run's updates follow
    its own schedule (a run whose whole schedule is 0 leaves the parameters as they were)."""
    import gin

    with gin.unlock_config():
        gin.bind_parameter("next_jax.train.make_schedule.kind", "warmup_linear")
        gin.bind_parameter("next_jax.train.make_schedule.peak_value", 8e-3)
        gin.bind_parameter("next_jax.train.make_optimizer.name", "adamw")
    try:
        trainer = Trainer(Decoder(TINY, rngs=nnx.Rngs(0)), peak_flops=1e12, schedule_per_run=True)
        start = jax.tree.map(jnp.copy, trainer.state.params)
        batch = make_batch(0)

        def run(num_steps: int, peak: float | None = None) -> list[float]:
            trainer.restart(start, checkpoint_dir=None, num_steps=num_steps, peak_learning_rate=peak)
            return [trainer.train_step(batch)["learning_rate"] for _ in range(num_steps)]

        np.testing.assert_allclose(run(6), [8e-3 * (1 - k / 6) for k in range(6)], rtol=1e-6)
        np.testing.assert_allclose(run(3), [8e-3 * (1 - k / 3) for k in range(3)], rtol=1e-6)
        compiled = len(trainer._jitted)
        np.testing.assert_allclose(run(3), [8e-3 * (1 - k / 3) for k in range(3)], rtol=1e-6)
        assert len(trainer._jitted) == compiled  # same run length: the same compiled step
        # a fine-tune at its own peak, then back to gin's peak at the same length
        np.testing.assert_allclose(run(3, peak=2e-3), [2e-3 * (1 - k / 3) for k in range(3)], rtol=1e-6)
        np.testing.assert_allclose(run(3), [8e-3 * (1 - k / 3) for k in range(3)], rtol=1e-6)

        # a new run length builds its schedule from gin then: 0 throughout moves nothing
        gin.bind_parameter("next_jax.train.make_schedule.peak_value", 0.0)
        trainer.restart(start, checkpoint_dir=None, num_steps=2)
        trainer.train_step(batch)
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(trainer.state.params), strict=True))
    finally:
        gin.clear_config()

"""The run configs under gin/runs parse and bind what they promise."""

from pathlib import Path

import gin
import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from train_fixtures import TINY

from next_jax.decode.sampler import Sampler, sampling_params
from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder
from next_jax.train.optimizers import learning_rate_at, make_optimizer, make_schedule

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def parse():
    def run(name: str) -> None:
        gin.clear_config()
        gin.add_config_file_search_path(str(ROOT))
        gin.parse_config_file(str(ROOT / "gin" / "runs" / name))

    yield run
    gin.clear_config()


def test_finetune_gin_binds_t5x_adafactor_and_bf16(parse):
    parse("finetune.gin")
    config = DecoderConfig()
    assert (config.dtype, config.param_dtype, config.z_loss) == ("bfloat16", "float32", 1e-4)
    assert learning_rate_at(make_schedule(), 10_000) == pytest.approx(1e-3)
    state = make_optimizer().init({"w": jnp.zeros((256, 256))})
    shapes = {x.shape for x in jax.tree.leaves(state)}
    assert (256,) in shapes and (256, 256) not in shapes  # Adafactor's factored second moments
    assert gin.query_parameter("Trainer.save_every") == 200


def test_finetune_adamw_gin_overrides(parse):
    parse("finetune_adamw.gin")
    schedule = make_schedule()
    assert learning_rate_at(schedule, 0) == 0.0
    assert learning_rate_at(schedule, 50) == pytest.approx(1e-5)
    assert learning_rate_at(schedule, 2000) == pytest.approx(1e-6)
    state = make_optimizer().init({"w": jnp.zeros((256, 256))})
    assert (256, 256) in {x.shape for x in jax.tree.leaves(state)}  # Adam's full moments
    assert DecoderConfig().dtype == "bfloat16"  # inherited from finetune.gin


def test_sample_gin(parse):
    parse("sample.gin")
    assert sampling_params() == dict(num_samples=8, max_new_tokens=512, temperature=0.8, top_k=0, top_p=0.95)
    sampler = Sampler(Decoder(TINY, rngs=nnx.Rngs(0)), eos_id=1)
    assert sampler.length_buckets == (128, 256, 512, 1024, 2048)


def test_trainer_takes_optimizer_and_schedule_from_gin(parse):
    from train_fixtures import make_batch

    from next_jax.train.trainer import Trainer

    parse("finetune.gin")
    trainer = Trainer(Decoder(TINY, rngs=nnx.Rngs(0)), peak_flops=1.0)
    paths = jax.tree_util.tree_flatten_with_path(trainer.state.opt_state)[0]
    assert any("v_row" in jax.tree_util.keystr(path) for path, _ in paths)  # Adafactor's state
    assert trainer.z_loss == 0.0  # TINY was built before gin bound DecoderConfig.z_loss
    metrics = trainer.train_step(make_batch(0))
    assert metrics["learning_rate"] == pytest.approx(1e-3)

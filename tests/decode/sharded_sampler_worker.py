"""Runs with 8 simulated CPU devices: the sampler on one device, data-parallel over 8, and on a
(fsdp=2, model=4) mesh. Prints one JSON line of results."""

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import json  # noqa: E402

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from next_jax.decode.sampler import Sampler  # noqa: E402
from next_jax.models.config import DecoderConfig  # noqa: E402
from next_jax.models.decoder import Decoder  # noqa: E402
from next_jax.models.mesh import create_mesh  # noqa: E402

CONFIG = DecoderConfig(
    vocab_size=96, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64
)
PROMPTS = [[5, 17, 23, 42, 8], [11, 4], [30, 31, 32, 33, 34, 35, 36], [9]]


def main() -> None:
    devices = jax.devices()
    model = Decoder(CONFIG, rngs=nnx.Rngs(0))
    meshes = {
        "single": create_mesh(devices=devices[:1]),
        "data8": create_mesh(data=8),
        "fsdp2_model4": create_mesh(data=1, fsdp=2, model=4),
    }
    results: dict = {}
    for name, mesh in meshes.items():
        sampler = Sampler(model, eos_id=3, mesh=mesh, length_buckets=(8,))
        greedy = sampler.sample(PROMPTS, num_samples=2, max_new_tokens=8, temperature=0.0)
        sampled = sampler.sample(PROMPTS, num_samples=2, max_new_tokens=8, temperature=1.0, top_k=20, seed=5)
        results[name] = {
            "greedy": greedy.tokens.tolist(),
            "greedy_logprobs": greedy.logprobs.tolist(),
            "sampled": sampled.tokens.tolist(),
            "param_devices": len(jax.tree.leaves(sampler._state)[0].sharding.device_set),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()

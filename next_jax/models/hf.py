"""Hugging Face checkpoint import/export: `load_pretrained` and `save_pretrained`.

Reads a local HF folder (config.json, model.safetensors or a sharded `model.safetensors.index.json`, and the
tokenizer) for LlamaForCausalLM, Qwen2ForCausalLM and GemmaForCausalLM into a `Decoder`, and writes a
`Decoder` of those families back into a folder that transformers loads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy
from flax import nnx

from next_jax.models import partitioning
from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder
from next_jax.models.hf_config import from_hf_config, to_hf_config
from next_jax.models.layer_stack import stacked_slot

StatePath = tuple[Any, ...]
# One tensor's correspondence: HF name, path in the nnx state, HF -> ours, ours -> HF.
Entry = tuple[str, StatePath, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


class Pretrained(NamedTuple):
    """What `load_pretrained` returns; unpacks as `model, vocab = load_pretrained(path)`."""

    model: Decoder
    vocab: Any  # seqio.Vocabulary or None


# Buffers some checkpoints carry that the model recomputes.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _linear_in(*shape: int) -> Callable[[np.ndarray], np.ndarray]:
    """torch Linear weight `[out, in]` -> our kernel `[in, *out_shape]`."""
    return lambda w: w.T.reshape(shape)


def _linear_out(w: np.ndarray) -> np.ndarray:
    """Our kernel `[in..., out...]` with one input axis -> torch `[out, in]`."""
    return w.reshape(w.shape[0], -1).T


def weight_map(config: DecoderConfig) -> list[Entry]:
    """Every HF tensor of `config`'s model with its place and layout in our `Decoder` state."""
    e, h, kvh, d = config.embed_dim, config.num_heads, config.num_kv_heads, config.head_dim
    entries: list[Entry] = [
        ("model.embed_tokens.weight", ("embedder", "embedding"), _same, _same),
        ("model.norm.weight", ("final_norm", "scale"), _same, _same),
    ]
    if not config.tie_embeddings:
        entries.append(("lm_head.weight", ("lm_head",), lambda w: w.T, lambda w: w.T))
    for i in range(config.num_layers):
        p, hf = ("layers", i), f"model.layers.{i}."
        entries += [
            (hf + "input_layernorm.weight", (*p, "attn_norm", "scale"), _same, _same),
            (hf + "post_attention_layernorm.weight", (*p, "mlp_norm", "scale"), _same, _same),
            (hf + "self_attn.q_proj.weight", (*p, "attn", "q"), _linear_in(e, h, d), _linear_out),
            (hf + "self_attn.k_proj.weight", (*p, "attn", "k"), _linear_in(e, kvh, d), _linear_out),
            (hf + "self_attn.v_proj.weight", (*p, "attn", "v"), _linear_in(e, kvh, d), _linear_out),
            # o: torch [e, h*d] <-> ours [h, d, e]
            (
                hf + "self_attn.o_proj.weight",
                (*p, "attn", "o"),
                lambda w: w.T.reshape(h, d, e),
                lambda w: w.reshape(h * d, e).T,
            ),
            (hf + "mlp.gate_proj.weight", (*p, "mlp", "gate"), lambda w: w.T, lambda w: w.T),
            (hf + "mlp.up_proj.weight", (*p, "mlp", "up"), lambda w: w.T, lambda w: w.T),
            (hf + "mlp.down_proj.weight", (*p, "mlp", "down"), lambda w: w.T, lambda w: w.T),
        ]
        if config.qkv_bias:
            entries += [
                (hf + "self_attn.q_proj.bias", (*p, "attn", "q_bias"), lambda b: b.reshape(h, d), np.ravel),
                (hf + "self_attn.k_proj.bias", (*p, "attn", "k_bias"), lambda b: b.reshape(kvh, d), np.ravel),
                (hf + "self_attn.v_proj.bias", (*p, "attn", "v_bias"), lambda b: b.reshape(kvh, d), np.ravel),
            ]
        if config.out_bias:
            entries.append((hf + "self_attn.o_proj.bias", (*p, "attn", "o_bias"), _same, _same))
        if config.mlp_bias:
            entries += [
                (hf + f"mlp.{name}_proj.bias", (*p, "mlp", f"{name}_bias"), _same, _same)
                for name in ("gate", "up", "down")
            ]
    return entries


def _checkpoint_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map_ = json.loads(index.read_text())["weight_map"]
        return [path / f for f in sorted(set(weight_map_.values()))]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {path} (PyTorch .bin checkpoints are not supported)")
    return files


def _read_tensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, numpy array) for every tensor of the checkpoint, one at a time (bf16 via ml_dtypes)."""
    for file in _checkpoint_files(path):
        with safetensors.safe_open(str(file), framework="numpy") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)


def _place(value: np.ndarray, target: jax.ShapeDtypeStruct, sharding: Any) -> jax.Array:
    if value.shape != target.shape:
        raise ValueError(f"checkpoint tensor of shape {value.shape} for a parameter of shape {target.shape}")
    value = np.asarray(value).astype(target.dtype)
    return jax.device_put(value, sharding) if sharding is not None else jnp.asarray(value)


def load_pretrained(
    path: str | Path,
    dtype: Any = jnp.float32,
    *,
    param_dtype: Any = None,
    mesh: jax.sharding.Mesh | None = None,
    rules: partitioning.LogicalRules | None = None,
    with_vocab: bool = True,
    config_overrides: dict[str, Any] | None = None,
) -> Pretrained:
    """Load a local HF checkpoint folder as `Pretrained(model, vocab)`.

    `dtype` is the computation dtype, `param_dtype` (default: `dtype`) the storage dtype of the parameters.
    With a `mesh` every tensor goes straight into its shard (`rules` default to gin's). The vocabulary is a
    `seqio.Vocabulary` read from `tokenizer.model` (SentencePiece) or `tokenizer.json`, or None when the
    folder has neither or `with_vocab` is False. `config_overrides` change `DecoderConfig` fields that do
    not alter the function (e.g. `scan_layers=True`, `remat=True`, `attention_impl`).
    """
    path = Path(path)
    dtype = jnp.dtype(dtype)
    param_dtype = dtype if param_dtype is None else jnp.dtype(param_dtype)
    hf = json.loads((path / "config.json").read_text())
    config = from_hf_config(hf, dtype=dtype.name, param_dtype=param_dtype.name)
    config = config.replace(**(config_overrides or {}))
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    shardings = None if mesh is None else partitioning.named_shardings(state, mesh, rules)
    flat = dict(nnx.to_flat_state(state))
    flat_shardings = None if shardings is None else dict(nnx.to_flat_state(shardings))
    entries = {name: (p, to_ours) for name, p, to_ours, _ in weight_map(config)}
    loaded: dict[StatePath, jax.Array] = {}
    found: set[StatePath] = set()  # per-layer paths of the tensors read
    # With `scan_layers` a tensor is layer i of a stacked parameter: collected on the host, placed whole.
    layer_parts: dict[StatePath, dict[int, np.ndarray]] = {}
    for name, tensor in _read_tensors(path):
        if name not in entries:
            if (name == "lm_head.weight" and config.tie_embeddings) or name.endswith(_IGNORED_SUFFIXES):
                continue
            raise ValueError(f"unexpected tensor {name!r} in {path} for a {config.family} model")
        p, to_ours = entries[name]
        found.add(p)
        stacked, layer = stacked_slot(p) if config.scan_layers else (p, None)
        if layer is not None:
            layer_parts.setdefault(stacked, {})[layer] = to_ours(tensor)
            continue
        sharding = None if flat_shardings is None else flat_shardings[p].get_value()
        loaded[p] = _place(to_ours(tensor), flat[p].get_value(), sharding)
    missing = [name for name, (p, _) in entries.items() if p not in found]
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} tensors, e.g. {missing[:3]}")
    for p, parts in layer_parts.items():
        sharding = None if flat_shardings is None else flat_shardings[p].get_value()
        stacked = np.stack([parts[i] for i in range(config.num_layers)])
        loaded[p] = _place(stacked, flat[p].get_value(), sharding)
    unmapped = set(flat) - set(loaded)
    if unmapped:  # a model parameter no HF tensor maps to: the weight map is out of date
        raise AssertionError(f"parameters without an HF counterpart: {sorted(map(str, unmapped))[:3]}")
    for p, value in loaded.items():
        flat[p] = flat[p].replace(value)
    model = nnx.merge(graphdef, nnx.from_flat_state(list(flat.items())))
    vocab = None
    if with_vocab:
        from next_jax.models.hf_vocab import load_vocabulary  # seqio pulls in TensorFlow: only when asked

        vocab = load_vocabulary(path)
    return Pretrained(model, vocab)


def _to_numpy(x: jax.Array, dtype: Any) -> np.ndarray:
    return np.asarray(jax.device_get(x)).astype(jnp.dtype(dtype))


def save_pretrained(
    model: Decoder,
    path: str | Path,
    *,
    vocab: Any = None,
    dtype: Any = None,
    max_shard_bytes: int = 5 * 2**30,
) -> Path:
    """Write `model` (a Llama, Qwen2 or Gemma family `Decoder`) as an HF checkpoint folder at `path`.

    Tensors are stored in `dtype` (default: the parameters' dtype); more than `max_shard_bytes` of them are
    split over several files with a `model.safetensors.index.json`. A `vocab` from `load_vocabulary`
    (or `load_pretrained`) is written alongside as tokenizer.json / tokenizer.model.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = model.config
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    tensors: dict[str, np.ndarray] = {}
    for name, p, _, to_hf in weight_map(config):
        stacked, layer = stacked_slot(p) if config.scan_layers else (p, None)
        value = flat[stacked].get_value()
        value = value if layer is None else value[layer]
        tensors[name] = np.ascontiguousarray(to_hf(_to_numpy(value, dtype or value.dtype)))
    torch_dtype = jnp.dtype(dtype or model.embedder.embedding.get_value().dtype).name
    (path / "config.json").write_text(json.dumps(to_hf_config(config, torch_dtype=torch_dtype), indent=2))
    _write_shards(tensors, path, max_shard_bytes)
    if vocab is not None:
        _write_vocab(vocab, path)
    return path


def _write_shards(tensors: dict[str, np.ndarray], path: Path, max_shard_bytes: int) -> None:
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, t in tensors.items():
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += t.nbytes
    metadata = {"format": "pt"}  # transformers refuses safetensors without this marker
    if len(shards) == 1:
        safetensors.numpy.save_file(shards[0], str(path / "model.safetensors"), metadata=metadata)
        return
    weight_map_: dict[str, str] = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        safetensors.numpy.save_file(shard, str(path / file), metadata=metadata)
        weight_map_.update(dict.fromkeys(shard, file))
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map_}
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _write_vocab(vocab: Any, path: Path) -> None:
    source = getattr(vocab, "tokenizer_file", None) or getattr(vocab, "sentencepiece_model_file", None)
    if source is None:
        raise TypeError(f"cannot export a {type(vocab).__name__}: no tokenizer file behind it")
    source = Path(source)
    target = path / ("tokenizer.json" if source.suffix == ".json" else "tokenizer.model")
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    config_file = source.parent / "tokenizer_config.json"
    if config_file.exists() and config_file.resolve() != (path / config_file.name).resolve():
        shutil.copyfile(config_file, path / config_file.name)

"""Hugging Face `config.json` <-> `DecoderConfig` for LlamaForCausalLM, Qwen2ForCausalLM, GemmaForCausalLM.

Absent keys take the defaults of the corresponding transformers config class, so trimmed config files read
the way transformers reads them.
"""

from __future__ import annotations

from typing import Any

from next_jax.models.config import DecoderConfig

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma": "GemmaForCausalLM"}

# transformers' class defaults for keys a config.json may omit.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(
        hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False
    ),
    "qwen2": dict(
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        num_key_value_heads=32,
    ),
    "gemma": dict(
        hidden_act="gelu_pytorch_tanh",
        max_position_embeddings=8192,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        head_dim=256,
        num_key_value_heads=16,
    ),
}
_ACTIVATIONS = {
    "silu": "swiglu",
    "swish": "swiglu",
    "gelu_pytorch_tanh": "geglu",
    "gelu_new": "geglu",
    "gelu": "geglu_exact",
    "relu": "reglu",
}
_HF_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu_pytorch_tanh", "geglu_exact": "gelu", "reglu": "relu"}


def family_of(hf: dict[str, Any]) -> str:
    """Which of the supported families a config.json describes."""
    model_type = hf.get("model_type")
    if model_type in ARCHITECTURES:
        return model_type
    for family, arch in ARCHITECTURES.items():
        if arch in hf.get("architectures", ()):
            return family
    raise ValueError(f"unsupported HF model (model_type={model_type!r}); supported: {sorted(ARCHITECTURES)}")


def _rope_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings from transformers 5 `rope_parameters` or the older `rope_theta` + `rope_scaling`."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    theta = params.get("rope_theta", hf.get("rope_theta", 10_000.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("partial rotary embeddings are not supported")
    fields: dict[str, Any] = dict(rope_theta=float(theta))
    if kind == "default":
        return fields
    if kind not in ("linear", "llama3"):
        raise ValueError(f"unsupported rope type {kind!r} (supported: default, linear, llama3)")
    fields.update(rope_scaling=kind, rope_scaling_factor=float(params["factor"]))
    if kind == "llama3":
        fields.update(
            rope_low_freq_factor=float(params["low_freq_factor"]),
            rope_high_freq_factor=float(params["high_freq_factor"]),
            rope_original_max_len=int(params["original_max_position_embeddings"]),
        )
    return fields


def _layer_windows(hf: dict[str, Any], family: str, num_layers: int) -> tuple[int, ...]:
    window = hf.get("sliding_window")
    if family != "qwen2" or not hf.get("use_sliding_window") or not window:
        return ()
    types = hf.get("layer_types") or [
        "sliding_attention" if i >= hf.get("max_window_layers", 28) else "full_attention"
        for i in range(num_layers)
    ]
    windows = tuple(int(window) if t == "sliding_attention" else 0 for t in types)
    return windows if any(windows) else ()


def from_hf_config(
    hf: dict[str, Any], *, dtype: str = "float32", param_dtype: str | None = None
) -> DecoderConfig:
    """`DecoderConfig` equivalent of a transformers config dict."""
    family = family_of(hf)
    hf = {**_DEFAULTS[family], **{k: v for k, v in hf.items() if v is not None}}
    if hf.get("use_bidirectional_attention"):
        raise ValueError("bidirectional Gemma variants are not causal LMs; not supported")
    heads = int(hf["num_attention_heads"])
    act = hf.get("hidden_activation") or hf["hidden_act"]
    if family == "gemma" and act == "gelu":
        act = "gelu_pytorch_tanh"  # transformers maps Gemma's legacy "gelu" to the tanh approximation too
    if act not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation {act!r}")
    attention_bias = bool(hf.get("attention_bias", False))
    num_layers = int(hf["num_hidden_layers"])
    return DecoderConfig(
        family=family,
        vocab_size=int(hf["vocab_size"]),
        num_layers=num_layers,
        embed_dim=int(hf["hidden_size"]),
        num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads", heads)),
        head_dim=int(hf.get("head_dim") or hf["hidden_size"] // heads),
        mlp_dim=int(hf["intermediate_size"]),
        activation=_ACTIVATIONS[act],
        qkv_bias=family == "qwen2" or attention_bias,
        out_bias=family != "qwen2" and attention_bias,
        mlp_bias=family == "llama" and bool(hf.get("mlp_bias", False)),
        norm="rms_plus_one" if family == "gemma" else "rms",
        norm_eps=float(hf["rms_norm_eps"]),
        embed_scale=family == "gemma",
        tie_embeddings=bool(hf["tie_word_embeddings"]),
        layer_windows=_layer_windows(hf, family, num_layers),
        max_len=int(hf["max_position_embeddings"]),
        dtype=dtype,
        param_dtype=param_dtype or dtype,
        **_rope_fields(hf),
    )


def _check_exportable(config: DecoderConfig) -> None:
    family = config.family
    if family not in ARCHITECTURES:
        raise ValueError(f"family {family!r} has no HF architecture; exportable: {sorted(ARCHITECTURES)}")
    expected = dict(
        parallel_block=False,
        scale_tied_logits=False,
        norm="rms_plus_one" if family == "gemma" else "rms",
        embed_scale=family == "gemma",
    )
    bad = [k for k, v in expected.items() if getattr(config, k) != v]
    if family == "qwen2" and (not config.qkv_bias or config.out_bias or config.mlp_bias):
        bad.append("biases (Qwen2 has q/k/v biases only)")
    if family == "gemma" and config.mlp_bias:
        bad.append("mlp_bias (Gemma's MLP has no biases)")
    if family != "qwen2" and config.qkv_bias != config.out_bias:
        bad.append("qkv_bias/out_bias (attention_bias sets both)")
    if family != "qwen2" and config.layer_windows:
        bad.append("layer_windows")
    if bad:
        raise ValueError(f"config does not match HF {ARCHITECTURES[family]}: {bad}")


def to_hf_config(config: DecoderConfig, *, torch_dtype: str = "float32") -> dict[str, Any]:
    """transformers config dict (config.json contents) equivalent of `config`."""
    _check_exportable(config)
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": config.rope_theta}
    if config.rope_scaling != "none":
        rope = {
            "rope_type": config.rope_scaling,
            "rope_theta": config.rope_theta,
            "factor": config.rope_scaling_factor,
        }
        if config.rope_scaling == "llama3":
            rope.update(
                low_freq_factor=config.rope_low_freq_factor,
                high_freq_factor=config.rope_high_freq_factor,
                original_max_position_embeddings=config.rope_original_max_len,
            )
    hf: dict[str, Any] = dict(
        architectures=[ARCHITECTURES[config.family]],
        model_type=config.family,
        vocab_size=config.vocab_size,
        hidden_size=config.embed_dim,
        intermediate_size=config.mlp_dim,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        hidden_act=_HF_ACTIVATIONS[config.activation],
        max_position_embeddings=config.max_len,
        rms_norm_eps=config.norm_eps,
        tie_word_embeddings=config.tie_embeddings,
        # transformers >= 5 reads rope_parameters; older versions read rope_theta (+ rope_scaling).
        rope_parameters=rope,
        rope_theta=config.rope_theta,
        dtype=torch_dtype,  # transformers >= 5
        torch_dtype=torch_dtype,  # transformers 4
    )
    if config.rope_scaling != "none":
        hf["rope_scaling"] = dict(rope)
    if config.family == "llama":
        hf.update(attention_bias=config.qkv_bias, mlp_bias=config.mlp_bias)
    if config.family == "gemma":
        hf.update(attention_bias=config.qkv_bias)
    if config.family == "qwen2":
        windows = [w for w in config.layer_windows if w]
        if len(set(windows)) > 1:
            raise ValueError("Qwen2 configs hold a single sliding window size")
        hf.update(
            use_sliding_window=bool(windows),
            sliding_window=windows[0] if windows else None,
            layer_types=[
                "sliding_attention" if config.window(i) else "full_attention"
                for i in range(config.num_layers)
            ],
            max_window_layers=next(
                (i for i in range(config.num_layers) if config.window(i)), config.num_layers
            ),
        )
    return hf

"""Model factory and size presets: `build_model`, `get_preset`, `list_presets`, `param_count`.

A preset is a gin file under `gin/models/` binding `DecoderConfig` fields. Experiments `include` it so the
bindings become global gin config; `get_preset` reads the same file without touching global gin state, so
library code and tests can ask for several presets side by side.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import gin
import gin.config_parser
import jax
import jax.numpy as jnp
from flax import nnx

from next_jax.models import partitioning
from next_jax.models.config import DecoderConfig
from next_jax.models.decoder import Decoder

PRESET_DIR = Path(
    os.environ.get("NEXT_JAX_MODEL_GIN", Path(__file__).resolve().parents[2] / "gin" / "models")
)
_SELECTORS = ("DecoderConfig", "next_jax.models.DecoderConfig", "next_jax.models.config.DecoderConfig")


@gin.configurable(module="next_jax.models")
def build_model(
    config: DecoderConfig | None = None,
    rngs: nnx.Rngs | None = None,
    *,
    seed: int = 0,
    dtype: Any = None,
    param_dtype: Any = None,
    mesh: jax.sharding.Mesh | None = None,
    rules: partitioning.LogicalRules | None = None,
) -> Decoder:
    """A freshly initialised `Decoder` (config default: `DecoderConfig()` with its gin bindings).

    With a `mesh`, parameters are created directly in their shards (rules default to gin's
    `logical_axis_rules()`); `rngs` then must be None and `seed` seeds the init.
    """
    config = DecoderConfig() if config is None else config
    if mesh is not None:
        if rngs is not None:
            raise ValueError("pass `seed`, not `rngs`, for a sharded build (init runs inside jit)")
        return partitioning.create_sharded(
            lambda: Decoder(config, rngs=nnx.Rngs(seed), dtype=dtype, param_dtype=param_dtype), mesh, rules
        )
    return Decoder(
        config, rngs=nnx.Rngs(seed) if rngs is None else rngs, dtype=dtype, param_dtype=param_dtype
    )


class _LiteralsOnly(gin.config_parser.ParserDelegate):
    """Presets bind plain values; references and macros would need global gin state."""

    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> Any:
        raise ValueError(f"model presets may only bind literals, found @{scoped_configurable_name}")

    def macro(self, macro_name: str) -> Any:
        raise ValueError(f"model presets may only bind literals, found %{macro_name}")


def preset_path(name: str) -> Path:
    """Path of a preset: a name under `PRESET_DIR` (e.g. `'llama3_8b'`) or a path to a `.gin` file."""
    path = Path(name)
    if path.suffix == ".gin" and path.exists():
        return path
    path = PRESET_DIR / f"{name}.gin"
    if not path.exists():
        raise KeyError(f"no model preset {name!r}; known: {list_presets()}")
    return path


def preset_bindings(name: str) -> dict[str, Any]:
    """The `DecoderConfig` field bindings of a preset file."""
    path = preset_path(name)
    bindings: dict[str, Any] = {}
    with path.open() as f:
        for statement in gin.config_parser.ConfigParser(f, _LiteralsOnly()):
            if isinstance(statement, gin.config_parser.ImportStatement):
                continue
            if not isinstance(statement, gin.config_parser.BindingStatement):
                raise ValueError(f"{path}: unsupported statement {statement!r} in a model preset")
            if statement.scope or statement.selector not in _SELECTORS:
                raise ValueError(f"{path}: presets bind DecoderConfig fields only, got {statement.selector}")
            bindings[statement.arg_name] = statement.value
    return bindings


def get_preset(name: str, **overrides: Any) -> DecoderConfig:
    """`DecoderConfig` of preset `name` (see `list_presets()`), with optional field overrides."""
    return DecoderConfig(**{**preset_bindings(name), **overrides})


def list_presets() -> list[str]:
    """Names of the preset gin files under `PRESET_DIR`."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.gin"))


def abstract_model(config: DecoderConfig) -> Decoder:
    """The model with `jax.ShapeDtypeStruct` parameters: shapes without allocation."""
    return nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))


def param_count(config_or_model: DecoderConfig | nnx.Module) -> int:
    """Number of parameters; a config is counted abstractly (`nnx.eval_shape`, nothing allocated)."""
    model = abstract_model(config_or_model) if isinstance(config_or_model, DecoderConfig) else config_or_model
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return sum(math.prod(x.shape) for x in leaves)


def param_bytes(config: DecoderConfig, dtype: Any = jnp.bfloat16) -> int:
    """Bytes of parameters stored in `dtype`."""
    return param_count(config) * jnp.dtype(dtype).itemsize

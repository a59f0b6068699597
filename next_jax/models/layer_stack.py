"""Convert decoder parameters between per-layer paths (`layers/i/...`) and the stacked layout of
`DecoderConfig.scan_layers` (`layers/...` with a leading layer axis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Path = tuple[Any, ...]


def stacked_slot(path: Path) -> tuple[Path, int | None]:
    """`('layers', i, *rest)` -> `(('layers', *rest), i)`; any other path -> `(path, None)`."""
    if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int):
        return ("layers", *path[2:]), path[1]
    return path, None


def stack_layers(flat: Mapping[Path, Any], num_layers: int) -> dict[Path, Any]:
    """Per-layer flat parameters -> stacked ones (numpy or jax arrays; stacked with numpy)."""
    out: dict[Path, Any] = {}
    per_layer: dict[Path, dict[int, Any]] = {}
    for path, value in flat.items():
        stacked, layer = stacked_slot(path)
        if layer is None:
            out[path] = value
        else:
            per_layer.setdefault(stacked, {})[layer] = value
    for path, layers in per_layer.items():
        if sorted(layers) != list(range(num_layers)):
            raise ValueError(f"{path}: layers {sorted(layers)} of {num_layers}")
        out[path] = np.stack([np.asarray(layers[i]) for i in range(num_layers)])
    return out


def unstack_layers(flat: Mapping[Path, Any], num_layers: int) -> dict[Path, Any]:
    """Stacked flat parameters -> per-layer ones (slices of the stacked arrays)."""
    out: dict[Path, Any] = {}
    for path, value in flat.items():
        if path and path[0] == "layers":
            out.update({("layers", i, *path[1:]): value[i] for i in range(num_layers)})
        else:
            out[path] = value
    return out

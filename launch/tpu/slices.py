"""What a Cloud TPU accelerator type means: chips, TPU VM workers, default runtime version.

Sources for the rules below (checked when this was written; re-check against the TPU docs for new generations):
- Names: v4 and v5p names count TensorCores, two per chip (`v5p-8` is 4 chips); v5e (`v5litepod-N`) and v6e
  (`v6e-N`) names count chips ("v$VERSION_NUMBER-$CHIP_COUNT", cloud.google.com/tpu/docs/v5e).
- Workers: a slice larger than one host is made of 4-chip TPU VMs (GKE machine types ct4p/ct5p-hightpu-4t,
  ct5lp-hightpu-4t, ct6e-standard-4t; xpk's system_characteristics.py uses 4 chips per VM; Levanter's TPU table
  lists v5litepod-256 as 64 VMs). v5e and v6e slices of up to 8 chips are one VM; v4/v5p slices of up to 4 chips
  are one VM. The "Number of hosts" column of the v5e page (32 for 16x16) counts 8-chip physical hosts, not the
  TPU VMs that `--worker=all` reaches.
- Runtime (software) versions for JAX: v6e `v2-alpha-tpuv6e`, v5p `v2-alpha-tpuv5`, v5e `v2-alpha-tpuv5-lite`,
  v4 `tpu-ubuntu2204-base` (cloud.google.com/tpu/docs/runtimes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Family:
    generation: str
    cores_per_chip: int  # what the number in the name counts, per chip
    one_vm_max_chips: int  # largest slice that is a single TPU VM
    runtime_version: str


# Keyed by the prefix gcloud and xpk spell in the accelerator type.
_FAMILIES = {
    "v4": _Family("v4", 2, 4, "tpu-ubuntu2204-base"),
    "v5p": _Family("v5p", 2, 4, "v2-alpha-tpuv5"),
    "v5litepod": _Family("v5e", 1, 8, "v2-alpha-tpuv5-lite"),
    "v6e": _Family("v6e", 1, 8, "v2-alpha-tpuv6e"),
}
# People say v5e-256; the TPU API only knows v5litepod-256.
_ALIASES = {"v5e": "v5litepod"}
CHIPS_PER_MULTIHOST_VM = 4


@dataclass(frozen=True)
class SliceSpec:
    """One TPU slice: the accelerator type as gcloud/xpk spell it, and what it holds."""

    accelerator_type: str
    generation: str
    chips: int
    workers: int  # TPU VMs; one jax process runs on each
    chips_per_worker: int
    runtime_version: str  # default TPU software version for JAX on this generation

    def describe(self) -> str:
        workers = f"{self.workers} worker" + ("s" if self.workers > 1 else "")
        return f"{self.accelerator_type} ({self.generation}): {self.chips} chips, {workers} x {self.chips_per_worker} chips"


def parse_accelerator(name: str) -> SliceSpec:
    """`v5p-8`, `v5litepod-256` or `v5e-256` -> SliceSpec; ValueError for unknown or impossible shapes."""
    match = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", name.strip().lower())
    if not match:
        raise ValueError(f"accelerator type {name!r} is not of the form GENERATION-COUNT (e.g. v5p-8, v5litepod-256)")
    prefix, count = _ALIASES.get(match[1], match[1]), int(match[2])
    family = _FAMILIES.get(prefix)
    if family is None:
        known = ", ".join(sorted([*_FAMILIES, *_ALIASES]))
        raise ValueError(f"unknown TPU generation {match[1]!r} (known: {known})")
    if count <= 0 or count % family.cores_per_chip:
        raise ValueError(f"{name}: the count must be a positive multiple of {family.cores_per_chip}")
    chips = count // family.cores_per_chip
    if chips <= family.one_vm_max_chips:
        workers, per_worker = 1, chips
    elif chips % CHIPS_PER_MULTIHOST_VM == 0:
        workers, per_worker = chips // CHIPS_PER_MULTIHOST_VM, CHIPS_PER_MULTIHOST_VM
    else:
        raise ValueError(f"{name}: a multi-host slice has a multiple of {CHIPS_PER_MULTIHOST_VM} chips")
    return SliceSpec(f"{prefix}-{count}", family.generation, chips, workers, per_worker, family.runtime_version)

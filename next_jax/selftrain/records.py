"""Records of a self-training iteration and the stable ids that make sampling independent of batching."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any


def stable_id(text: str) -> int:
    """A non-negative int32 from a string (an example id): the sampler's per-prompt random stream id."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def sampling_seed(seed: int, iteration: int, purpose: str = "train") -> int:
    """A uint32 seed for one iteration's sampling (or evaluation): with `stable_id` and the sample index it
    fixes every sample's random key, whatever the batching, chunking, resume or number of hosts."""
    return stable_id(f"{seed}:{iteration}:{purpose}")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sampled completion of one problem (`../shared/DESIGN.md`)."""

    example_id: str
    iteration: int
    index: int
    completion: str
    parse_status: str
    rationale: str
    code: str
    logprob: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Sample:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def verdict_record(example_id: str, iteration: int, index: int, verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict shard line: the sample's key and the pool's verdict (or its parse status when not run)."""
    return {
        "example_id": example_id,
        "iteration": iteration,
        "index": index,
        "status": verdict["status"],
        "passed": int(verdict.get("passed", 0)),
        "total": int(verdict.get("total", 0)),
        "details": list(verdict.get("details", ())),
    }

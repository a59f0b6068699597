"""A TFDS builder for a built MBPP-R (or any repair-example) directory of split JSONL files.

The builder reads `<manual_dir>/{train,validation,test}.jsonl` written by `launch/build_mbpp_r.py`; no
download. Versioned so a change of the build recipe gives a new dataset version next to the old one.
This module imports tensorflow_datasets; the rest of `next_jax.data` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from next_jax.data.example import RepairExample, read_examples

SPLITS = ("train", "validation", "test")


def to_features(ex: RepairExample) -> dict[str, Any]:
    """A repair example as the builder's feature dict (provenance flattened, missing reference as "")."""
    return {
        "id": ex.id,
        "problem_id": ex.problem_id,
        "description": ex.description,
        "buggy_code": ex.buggy_code,
        "entry_point": ex.entry_point,
        "tests": list(ex.tests),
        "hidden_tests": list(ex.hidden_tests),
        "reference": ex.reference or "",
        "setup": ex.setup,
        "failing_tests": list(ex.failing_tests),
        "failure_type": ex.failure_type,
        "dataset": ex.provenance.dataset,
        "origin": ex.provenance.origin,
        "operator": ex.provenance.operator,
        "detail": ex.provenance.detail,
    }


class MbppR(tfds.core.GeneratorBasedBuilder):
    """MBPP-R repair tasks (Ni et al. 2024), rebuilt offline; see docs/data.md."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Mutation-built MBPP-R: MBPP train (601-974) / validation (511-600) problems.",
        "1.1.0": (
            "The per-problem cap counts kept (failing) bugs, not candidates run; 3 more mutation operators and "
            "second-order mutants (pairs of edits) once a program's single edits run out."
        ),
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Run launch/build_mbpp_r.py and pass its mbpp_r/ directory as manual_dir."
    # No metadata files (checksums, README) live next to this code: telling TFDS so also spares it a lookup
    # that needs the `importlib_resources` package, which tensorflow-datasets 4.9.10 does not install.
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        # DatasetInfo directly: `dataset_info_from_configs` reads metadata files next to the builder's code,
        # which needs the optional `importlib_resources` package.
        return tfds.core.DatasetInfo(
            builder=self,
            description="NExT program-repair tasks built from MBPP (see docs/data.md).",
            features=tfds.features.FeaturesDict(
                {
                    **{
                        k: text
                        for k in (
                            "id",
                            "problem_id",
                            "description",
                            "buggy_code",
                            "entry_point",
                            "reference",
                            "setup",
                            "failure_type",
                            "dataset",
                            "origin",
                            "operator",
                            "detail",
                        )
                    },
                    "tests": tfds.features.Sequence(text),
                    "hidden_tests": tfds.features.Sequence(text),
                    "failing_tests": tfds.features.Sequence(tfds.features.Scalar(dtype=np.int32)),
                }
            ),
            homepage="https://arxiv.org/abs/2404.14662",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = Path(dl_manager.manual_dir)
        # A split file with no examples (e.g. a sampled build that kept none) is no TFDS split: TFDS
        # refuses to write an empty one.
        found = {s: root / f"{s}.jsonl" for s in SPLITS if _has_examples(root / f"{s}.jsonl")}
        if not found:
            raise FileNotFoundError(f"no non-empty split JSONL files in {root}")
        return {s: self._generate_examples(p) for s, p in found.items()}

    def _generate_examples(self, path: Path):
        for ex in read_examples(path):
            yield ex.id, to_features(ex)


def _has_examples(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open(encoding="utf-8") as f:
        return any(line.strip() for line in f)


def build_tfds(jsonl_dir: str | Path, data_dir: str | Path) -> tfds.core.DatasetBuilder:
    """Prepare the TFDS dataset from `jsonl_dir` into `data_dir`; returns the builder (use `as_dataset`)."""
    builder = MbppR(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(jsonl_dir)))
    return builder

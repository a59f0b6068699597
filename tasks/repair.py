"""Registration of the NExT repair tasks and mixtures.

Tasks (each also with `_notrace` and `_scratchpad` variants; the plain name uses the inline trace format):
- `next_mbpp_r`      train, validation  (built by launch/build_mbpp_r.py under the data root)
- `next_hefix_plus`  test               (built by launch/build_mbpp_r.py --hefix_plus)
- `next_synthetic`   train, validation  (generated on the fly; sizes and seed from gin)
Mixtures: `next_repair_train` (MBPP-R + synthetic), one per trace format.

Features: `inputs` is the prompt (a prefix without loss under `seqio.DecoderFeatureConverter`), `targets` the
answer; `id` and `meta` ride along for postprocessing and are dropped by the feature converter.
"""

from __future__ import annotations

import gin
import seqio

from tasks.repair_metrics import postprocess, repair_metrics
from tasks.sources import built_examples, repair_source, synthetic_examples
from tasks.vocabularies import output_features

VARIANTS = {"": "inline", "_notrace": "none", "_scratchpad": "scratchpad"}

# No offline cache placeholder: prompts depend on gin (trace format, budget, vocabulary).
PREPROCESSORS = [seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim]


def _register(name: str, source: seqio.DataSource) -> None:
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=source,
        output_features=output_features(),
        preprocessors=PREPROCESSORS,
        postprocess_fn=postprocess,
        metric_fns=[repair_metrics],
    )


@gin.configurable
def mixture_rate(task: seqio.Task, mbpp_r: float = 1.0, synthetic: float = 1.0) -> float:
    """Sampling rate of a task in `next_repair_train*` (gin: mixture_rate.synthetic = 0.0 drops it)."""
    return synthetic if "synthetic" in task.name else mbpp_r


def register_all() -> None:
    """(Re-)register every repair task and mixture."""
    for suffix, fmt in VARIANTS.items():
        _register(
            f"next_mbpp_r{suffix}",
            repair_source(built_examples("mbpp_r"), ["train", "validation"], fmt, trusted=False),
        )
        _register(
            f"next_hefix_plus{suffix}",
            repair_source(built_examples("hefix_plus"), ["test"], fmt, trusted=False),
        )
        _register(
            f"next_synthetic{suffix}",
            repair_source(synthetic_examples, ["train", "validation"], fmt, trusted=True),
        )
        mix = f"next_repair_train{suffix}"
        if mix in seqio.MixtureRegistry.names():
            seqio.MixtureRegistry.remove(mix)
        seqio.MixtureRegistry.add(
            mix, [f"next_mbpp_r{suffix}", f"next_synthetic{suffix}"], default_rate=mixture_rate
        )


register_all()

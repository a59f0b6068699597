from __future__ import annotations

import json

import gin
import pytest
import seqio

from next_jax.data.exemplars import EXEMPLARS
from tasks.repair import VARIANTS

TASK_SPLITS = [
    (base + suffix, split)
    for base, splits in (
        ("next_mbpp_r", ("train", "validation")),
        ("next_hefix_plus", ("test",)),
        ("next_synthetic", ("train", "validation")),
    )
    for suffix in VARIANTS
    for split in splits
]
LENGTHS = {"inputs": 3072, "targets": 512}


def _batches(name: str, split: str, pack: bool, batch_size: int = 2):
    ds = seqio.get_dataset(
        name,
        task_feature_lengths=LENGTHS,
        dataset_split=split,
        shuffle=False,
        feature_converter=seqio.DecoderFeatureConverter(pack=pack),
        batch_size=batch_size,
    )
    return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("name,split", TASK_SPLITS)
def test_every_task_yields_decoder_batches(name, split):
    batches = _batches(name, split, pack=True, batch_size=1)  # tiny splits may pack into a single row
    assert batches
    b = batches[0]
    assert {
        "decoder_target_tokens",
        "decoder_input_tokens",
        "decoder_loss_weights",
        "decoder_causal_attention",
        "decoder_segment_ids",
        "decoder_positions",
    } <= set(b)
    assert b["decoder_target_tokens"].shape == (1, sum(LENGTHS.values()))
    assert b["decoder_loss_weights"].sum() > 0
    # the prompt is a prefix: no loss where the causal-attention (prefix) mask is on, except its last position
    assert (b["decoder_loss_weights"] * b["decoder_causal_attention"]).sum() <= b[
        "decoder_segment_ids"
    ].max() * 2


def test_loss_is_on_the_target_and_the_prompt_is_the_prefix():
    task = seqio.get_mixture_or_task("next_synthetic")
    raw = next(
        task.get_dataset({"inputs": 3072, "targets": 512}, split="train", shuffle=False).as_numpy_iterator()
    )
    vocab = task.output_features["targets"].vocabulary
    b = _batches("next_synthetic", "train", pack=False, batch_size=1)[0]
    tokens, weights, prefix = (
        b["decoder_target_tokens"][0],
        b["decoder_loss_weights"][0],
        b["decoder_causal_attention"][0],
    )
    target_ids = tokens[weights > 0]
    assert target_ids[-1] == vocab.eos_id
    assert vocab.decode(target_ids[:-1].tolist()) == vocab.decode(raw["targets"].tolist())
    n_inputs = len(raw["inputs"])
    assert vocab.decode(tokens[:n_inputs].tolist()) == vocab.decode(raw["inputs"].tolist())
    assert prefix[:n_inputs].all() and not weights[:n_inputs].any()


def test_prompt_features_by_variant():
    def first(name):
        task = seqio.get_mixture_or_task(name)
        ex = next(task.source.get_dataset("train", shuffle=False).as_numpy_iterator())
        return {k: v.decode() for k, v in ex.items()}

    inline, none, pad = (
        first("next_synthetic"),
        first("next_synthetic_notrace"),
        first("next_synthetic_scratchpad"),
    )
    assert inline["id"] == none["id"] == pad["id"]
    assert "with the trace of" in inline["inputs"] and "# (" in inline["inputs"]
    assert "# (" not in none["inputs"] and "### Trace of" not in none["inputs"]
    assert pad["inputs"] != inline["inputs"] != none["inputs"]
    meta = json.loads(inline["meta"])
    assert meta["tests"] and meta["entry_point"] in inline["inputs"]
    assert "\n\nFixed program:\n```python\n" in inline["targets"]  # gold rationale, then the fix


def test_packing_puts_several_short_examples_in_one_row():
    b = _batches("next_synthetic_notrace", "train", pack=True, batch_size=1)[0]
    assert b["decoder_segment_ids"].max() >= 2


def test_mixture_and_its_gin_rate(repair_gin):
    mix = seqio.get_mixture_or_task("next_repair_train")
    assert {t.name for t in mix.tasks} == {"next_mbpp_r", "next_synthetic"}
    gin.parse_config(repair_gin + ["mixture_rate.synthetic = 0.0"])
    ds = seqio.get_dataset(
        "next_repair_train",
        task_feature_lengths=LENGTHS,
        dataset_split="train",
        shuffle=False,
        feature_converter=seqio.DecoderFeatureConverter(pack=False),
        batch_size=1,
        seed=0,
    )
    assert next(ds.as_numpy_iterator())["decoder_target_tokens"].shape == (1, 3584)
    assert mix.get_rate(seqio.get_mixture_or_task("next_synthetic")) == 0.0


def test_few_shot_prefix_from_gin(repair_gin):
    gin.parse_config(
        repair_gin + ["repair_data_config.few_shot = True", "repair_data_config.prompt_budget = 16384"]
    )
    task = seqio.get_mixture_or_task("next_synthetic")
    text = next(task.source.get_dataset("train", shuffle=False).as_numpy_iterator())["inputs"].decode()
    assert text.count("### Answer") == len(EXEMPLARS) + 1  # the exemplars, then the question
    assert text.count("Fixed program:") == len(EXEMPLARS) and "omitted to fit" not in text

from __future__ import annotations

import json

import pytest
import seqio

from next_jax.data.example import write_jsonl
from next_jax.data.prompts import format_target
from next_jax.data.synthetic import generate_synthetic
from tasks.repair_metrics import postprocess, repair_metrics
from tasks.selftrain import register_kept_task


def test_kept_jsonl_task(tmp_path):
    recs = [
        {
            "id": f"s{i}",
            "prompt": f"### Task\nproblem {i}\n### Answer\n",
            "target": format_target(f"because {i}", f"def f():\n    return {i}\n"),
        }
        for i in range(5)
    ]
    write_jsonl(tmp_path / "iter_0" / "kept.jsonl", recs[:3])
    write_jsonl(tmp_path / "iter_1" / "kept.jsonl", recs[3:])
    task = register_kept_task("next_kept_test", str(tmp_path / "iter_*" / "kept.jsonl"))
    raw = list(
        task.get_dataset({"inputs": 256, "targets": 256}, split="train", shuffle=False).as_numpy_iterator()
    )
    vocab = task.output_features["targets"].vocabulary
    assert [vocab.decode(r["targets"].tolist()) for r in raw] == [r["target"] for r in recs]
    ds = seqio.get_dataset(
        "next_kept_test",
        task_feature_lengths={"inputs": 256, "targets": 256},
        feature_converter=seqio.DecoderFeatureConverter(pack=True),
        batch_size=1,
        shuffle=False,
    )
    b = next(ds.as_numpy_iterator())
    assert b["decoder_segment_ids"].max() >= 2 and b["decoder_loss_weights"].sum() > 0
    register_kept_task("next_kept_missing", str(tmp_path / "nothing_*.jsonl"))
    with pytest.raises(Exception, match="no kept JSONL"):
        list(
            seqio.get_mixture_or_task("next_kept_missing")
            .get_dataset({"inputs": 64, "targets": 64}, split="train")
            .as_numpy_iterator()
        )


def test_kept_records_need_prompt_and_target(tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p"}])
    task = register_kept_task("next_kept_bad", [tmp_path / "bad.jsonl"])
    with pytest.raises(Exception, match="prompt' and 'target"):
        list(task.get_dataset({"inputs": 64, "targets": 64}, split="train").as_numpy_iterator())


@pytest.fixture(scope="module")
def pool():
    from next_jax.execution.pool import VerificationPool

    with VerificationPool(workers=2, timeout=5.0) as p:
        yield p


def test_fix_rate_and_pass_at_k_through_the_pool(pool):
    exs = generate_synthetic(3, "train", seed=5)

    def target(ex):
        meta = {"entry_point": ex.entry_point, "tests": list(ex.hidden_tests), "setup": ex.setup}
        return postprocess(
            b"", example={"id": ex.id.encode(), "meta": json.dumps(meta).encode()}, is_target=True
        )

    good = [format_target("fixed", ex.reference) for ex in exs]
    bad = [format_target("not fixed", ex.buggy_code) for ex in exs]
    targets, preds = [], []
    # example 0: 2 of 2 fixed; example 1: 1 of 2; example 2: none (one buggy, one unparsable)
    for i, p in [(0, good[0]), (0, good[0]), (1, good[1]), (1, bad[1]), (2, bad[2]), (2, "I give up.")]:
        targets.append(target(exs[i]))
        preds.append(postprocess(p.encode()))
    got = repair_metrics(targets, preds, ks=(1, 2, 5), pool=pool)
    assert got["fix_rate"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["pass@1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["pass@2"] == pytest.approx((1 + 1 + 0) / 3)
    assert "pass@5" not in got  # more than the 2 samples per example
    assert got["status/pass"] == pytest.approx(3 / 6) and got["status/parse_no_code"] == pytest.approx(1 / 6)

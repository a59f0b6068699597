"""Training batches over several JSON-lines files: one uniform shuffle over all their records."""

from __future__ import annotations

import itertools

from next_jax.data.example import write_jsonl
from next_jax.selftrain.batches import training_batches
from tasks.vocabularies import get_vocabulary


def test_later_files_reach_the_first_batches(tmp_path):
    # seqio's default 1,000-record buffer, fed file by file, would give only "a" records for the first
    # 1,000 draws here: the seed set listed after the corpus would be missing from early training.
    vocab = get_vocabulary(kind="byte")
    corpus, seed = tmp_path / "corpus.jsonl", tmp_path / "seed.jsonl"
    write_jsonl(corpus, ({"id": f"a{i}", "prompt": "p", "target": "aaaa"} for i in range(2000)))
    write_jsonl(seed, ({"id": f"b{i}", "prompt": "p", "target": "bbbb"} for i in range(500)))
    batches = training_batches("test_batches_mix", [corpus, seed], batch_size=8, num_steps=10, seed=3,
                               vocabulary=vocab, lengths={"inputs": 8, "targets": 8}, pack=False)
    b_id = vocab.encode("b")[0]
    rows = list(itertools.chain.from_iterable(b["decoder_target_tokens"] for b in batches))
    assert len(rows) == 80
    with_b = sum(int(b_id in row) for row in rows)
    assert 4 <= with_b <= 36  # about 16 of 80 (500 of 2,500 records), never 0


def test_loss_on_prompt_weights_every_token_of_a_record(tmp_path):
    # Pretraining's option: the prompt's bytes count in the loss too; by default only the target's do.
    vocab = get_vocabulary(kind="byte")
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, ({"id": f"r{i}", "prompt": "prompt!", "target": "ans"} for i in range(8)))
    lengths = {"inputs": 8, "targets": 8}

    def weighted(loss_on_prompt: bool):
        batch = next(training_batches(f"test_batches_lop_{loss_on_prompt}", [path], batch_size=2, num_steps=1,
                                      seed=0, vocabulary=vocab, lengths=lengths, loss_on_prompt=loss_on_prompt))
        tokens, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
        assert not (weights * (tokens == 0)).any()  # padding never counts
        return int(weights.sum()), int((tokens != 0).sum())

    targets_only, nonpad = weighted(False)
    everything, nonpad_again = weighted(True)
    assert nonpad == nonpad_again
    assert everything == nonpad  # prompt, target and EOS of every packed record
    assert targets_only == nonpad - nonpad * len("prompt!") // (len("prompt!") + len("ans") + 1)

"""The `export_best` stage: the best dev iteration's parameters as an orbax copy (`RUN/best/params`, or the
URL's) and an HF folder (`RUN/best/hf`, `save_pretrained`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from next_jax.selftrain.loop import Loop


def export_best(loop: Loop, best: int) -> dict:
    """Save iteration `best`'s parameters; every process takes part, process 0 writes the HF folder."""
    from next_jax.models.hf import save_pretrained

    params = loop.params(f"iter_{best}")
    out, saved = loop.run.path("best"), loop.run.checkpoint_path("best", "params")
    loop.runtime.save(params, saved)  # every process: each writes its pieces
    model = loop.runtime.model_with(params)  # every process: gathers the parameters onto each host
    if loop.main:
        has_file = getattr(loop.vocab, "tokenizer_file", None) or getattr(loop.vocab, "sentencepiece_model_file", None)
        save_pretrained(model, out / "hf", vocab=loop.vocab if has_file else None)
    return {"iteration": best, "hf": str(out / "hf"), "params": saved}

"""Host-side prompt batching: bucketed static shapes and left padding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


def bucket(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n; past the largest, the next multiple of the largest.

    Padding every shape up to a few buckets bounds the number of distinct compilations.
    """
    if n <= 0:
        raise ValueError(f"cannot bucket {n}")
    for b in sorted(buckets):
        if b >= n:
            return b
    top = max(buckets)
    return -(-n // top) * top


def batch_bucket(n: int, multiple_of: int = 1) -> int:
    """Smallest `multiple_of * 2**k` >= n: a batch size that splits evenly over the data-parallel devices
    and takes few distinct values."""
    size = max(1, multiple_of)
    while size < n:
        size *= 2
    return size


def left_pad(
    prompts: Sequence[Sequence[int]], length: int, batch: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """`(tokens, mask)` int32 `[batch, length]`: each prompt right-aligned, so every row's last prompt token
    is in the last column and decoding writes all rows at the same cache slot.

    Rows beyond `len(prompts)` are filler: a single pad token marked real (a row with no real token would
    have nothing to attend to); their outputs are dropped.
    """
    tokens = np.full((batch, length), pad_id, dtype=np.int32)
    mask = np.zeros((batch, length), dtype=np.int32)
    for i, prompt in enumerate(prompts):
        p = np.asarray(prompt, dtype=np.int32).reshape(-1)
        if p.size == 0:
            raise ValueError(f"prompt {i} is empty")
        if p.size > length:
            raise ValueError(f"prompt {i} has {p.size} tokens, more than the padded length {length}")
        tokens[i, length - p.size :] = p
        mask[i, length - p.size :] = 1
    mask[len(prompts) :, -1] = 1
    return tokens, mask

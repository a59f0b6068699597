"""Prompt length / batch bucketing and left padding."""

import numpy as np
import pytest

from next_jax.decode.batching import batch_bucket, bucket, left_pad


def test_bucket_picks_smallest_and_rounds_past_the_largest():
    assert bucket(1, (8, 16)) == 8
    assert bucket(8, (8, 16)) == 8
    assert bucket(9, (16, 8)) == 16
    assert bucket(17, (8, 16)) == 32
    assert bucket(33, (8, 16)) == 48
    with pytest.raises(ValueError):
        bucket(0, (8,))


def test_batch_bucket_is_multiple_of_data_parallel_size():
    assert batch_bucket(1) == 1
    assert batch_bucket(3) == 4
    assert batch_bucket(5, multiple_of=4) == 8
    assert batch_bucket(2, multiple_of=4) == 4
    assert batch_bucket(9, multiple_of=3) == 12


def test_left_pad_right_aligns_and_marks_filler_rows():
    tokens, mask = left_pad([[5, 6, 7], [9]], length=4, batch=3, pad_id=0)
    np.testing.assert_array_equal(tokens, [[0, 5, 6, 7], [0, 0, 0, 9], [0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    with pytest.raises(ValueError):
        left_pad([[1, 2, 3]], length=2, batch=1, pad_id=0)
    with pytest.raises(ValueError):
        left_pad([[]], length=2, batch=1, pad_id=0)

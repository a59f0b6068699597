"""The fix-rate figure: a valid PNG of a sensible size, for full, partial and empty summaries."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from next_jax.selftrain.plots import plot_fix_rate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_fix_rate_png(fake_run, tmp_path: Path) -> None:
    out = plot_fix_rate(fake_run.summary, fake_run.path / "fix_rate.png")
    assert out == fake_run.path / "fix_rate.png"
    width, height = _png_size(out)
    assert (width, height) == (900, 450)
    assert 15_000 < out.stat().st_size < 1_000_000
    assert not list(fake_run.path.glob("*.tmp"))
    if copy := os.environ.get("NEXT_JAX_FIX_RATE_PNG"):  # to look at it by hand
        shutil.copy(out, copy)


@pytest.mark.parametrize("summary", [
    {},
    {"iterations": [], "base": None, "control": {"greedy_fix_rate": 0.1}},
    {"iterations": [{"iteration": 1, "dev": None, "dev_notrace": {"greedy_fix_rate": 0.2}}], "best_iteration": 1},
    {"iterations": [{"iteration": "x"}, "not a dict"], "base": {"greedy_fix_rate": "bad"}},
], ids=["empty", "no-iterations", "null-evals", "junk"])
def test_partial_summaries_still_plot(summary: dict, tmp_path: Path) -> None:
    out = plot_fix_rate(summary, tmp_path / "sub" / "fix_rate.png")
    assert _png_size(out) == (900, 450)
    assert out.stat().st_size > 5_000

"""Progress bars with ETA (tqdm) for the loop's stages; silent when disabled (tests, non-primary hosts)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm


class Progress:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    @contextlib.contextmanager
    def bar(self, desc: str, total: int) -> Iterator[Callable[[int], None]]:
        """A callable that advances a bar of `total` units by its argument."""
        with tqdm(total=total, desc=desc, disable=not self.enabled, file=sys.stderr, unit="problem",
                  dynamic_ncols=True) as t:
            yield t.update

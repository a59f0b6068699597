"""Parse completions and verify their fixes: the one parse-and-verify path for SeqIO metrics and the loop.

A completion that does not parse is never run; it counts as a failed sample under its parse status.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

from next_jax.data.parsing import parse_completion
from next_jax.execution.verdict import Candidate


def candidate_for(code: str, ident: str, meta: Mapping[str, Any], timeout: float | None = None) -> Candidate:
    """The pool candidate for a fix (`ParsedCompletion.code`) of the problem described by `meta`
    (`entry_point`, `tests`, `setup`); `timeout` is a per-problem limit where known."""
    return Candidate(ident, code, tuple(meta["tests"]), meta.get("setup", ""),
                     entry_point=meta.get("entry_point", ""), timeout=timeout)


def verify_predictions(
    targets: Sequence[Mapping[str, Any]], predictions: Sequence[str], pool: Any
) -> tuple[dict[str, list[bool]], collections.Counter[str]]:
    """Per example id, whether each prediction's fix passes; and the count of each verdict/parse status.

    `targets` hold {"id", "entry_point", "tests", "setup"} and, for edit answers, "buggy_code"
    (see `rendering.verification_meta`).
    """
    outcomes: dict[str, list[bool]] = collections.defaultdict(list)
    statuses: collections.Counter[str] = collections.Counter()
    jobs = []
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        parsed = parse_completion(p, t["entry_point"], t.get("buggy_code"))
        if parsed.ok:
            jobs.append((t["id"], candidate_for(parsed.code, f"{t['id']}#{i}", t)))
        else:
            outcomes[t["id"]].append(False)
            statuses[parsed.status] += 1
    verdicts = pool.verify([c for _, c in jobs]) if jobs else []
    for (ident, _), v in zip(jobs, verdicts, strict=True):
        outcomes[ident].append(v.ok)
        statuses[v.status] += 1
    return dict(outcomes), statuses

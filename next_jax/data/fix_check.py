"""Parse completions and verify their fixes: the one parse-and-verify path for SeqIO metrics and the loop.

A completion that does not parse is never run; it counts as a failed sample under its parse status.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

from next_jax.data.parsing import ParsedCompletion, parse_completion
from next_jax.execution.verdict import Candidate


def candidate_for(
    parsed: ParsedCompletion, ident: str, meta: Mapping[str, Any], timeout: float | None = None
) -> Candidate | None:
    """The pool candidate for a parsed completion of the problem described by `meta` (`entry_point`,
    `tests`, `setup`), or None when it did not parse. `timeout` is a per-problem limit where known."""
    if not parsed.ok:
        return None
    extra = {"timeout": timeout} if timeout is not None and "timeout" in Candidate.__dataclass_fields__ else {}
    return Candidate(
        ident,
        parsed.code,
        tuple(meta["tests"]),
        meta.get("setup", ""),
        entry_point=meta.get("entry_point", ""),
        **extra,
    )


def verify_predictions(
    targets: Sequence[Mapping[str, Any]], predictions: Sequence[str], pool: Any
) -> tuple[dict[str, list[bool]], collections.Counter[str]]:
    """Per example id, whether each prediction's fix passes; and the count of each verdict/parse status.

    `targets` hold {"id", "entry_point", "tests", "setup"} (see `rendering.verification_meta`).
    """
    outcomes: dict[str, list[bool]] = collections.defaultdict(list)
    statuses: collections.Counter[str] = collections.Counter()
    jobs = []
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        parsed = parse_completion(p, t["entry_point"])
        candidate = candidate_for(parsed, f"{t['id']}#{i}", t)
        if candidate is not None:
            jobs.append((t["id"], candidate))
        else:
            outcomes[t["id"]].append(False)
            statuses[parsed.status] += 1
    verdicts = pool.verify([c for _, c in jobs]) if jobs else []
    for (ident, _), v in zip(jobs, verdicts, strict=True):
        outcomes[ident].append(v.ok)
        statuses[v.status] += 1
    return dict(outcomes), statuses

"""The report's data: samples, verdicts and prompts of a run directory, joined and capped for one page.

At most `max_problems` problems (a fixed hash-ordered choice, so reruns show the same ones) and, per problem and
iteration, `max_samples_per_problem` samples (statuses taken in turn so passes and failures both show); strings
are cut at `max_chars`. Damaged shards become warnings, never errors.
"""

from __future__ import annotations

import collections
import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from next_jax.data.example import iter_jsonl

_ITER_DIR = re.compile(r"iter_(\d+)")
_DETAILS_KEPT = 20  # verdict details per sample: the first failing tests are what a reader looks at


# ----------------------------------------------------------------------------------------------------------
# Reading samples and verdicts


def _iteration_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _ITER_DIR.fullmatch(p.name))]
    return sorted(found)


def _shards(d: Path) -> list[Path]:
    # Only complete shards: temporary names (a stage still writing) do not end in .jsonl(.gz).
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith((".jsonl.gz", ".jsonl")))


def _records(paths: list[Path], warnings: list[str]) -> Iterator[dict[str, Any]]:
    """Records of every shard in order; a damaged shard is reported on the page, not fatal."""
    for path in paths:
        try:
            for rec in iter_jsonl(path):
                if isinstance(rec, dict):
                    yield rec
        except (OSError, EOFError, ValueError) as e:
            warnings.append(f"{path.parent.parent.name}/{path.parent.name}/{path.name}: stopped reading: {e}")


def _clip(s: Any, max_chars: int) -> str:
    s = s if isinstance(s, str) else ("" if s is None else str(s))
    return s if len(s) <= max_chars else s[:max_chars] + f"\n... [{len(s) - max_chars} more characters cut]"


def _clean(x: Any, max_chars: int, depth: int = 0) -> Any:
    """A JSON-safe copy: strings clipped, non-finite floats to None (JSON.parse rejects NaN), depth bounded."""
    if isinstance(x, str):
        return _clip(x, max_chars)
    if isinstance(x, bool) or x is None or isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if depth > 4:
        return _clip(repr(x), max_chars)
    if isinstance(x, Mapping):
        return {str(k): _clean(v, max_chars, depth + 1) for k, v in list(x.items())[:50]}
    if isinstance(x, list | tuple):
        return [_clean(v, max_chars, depth + 1) for v in x[:_DETAILS_KEPT]]
    return _clip(str(x), max_chars)


def _status(parse_status: str, verdict: Mapping[str, Any] | None) -> str:
    if verdict is not None:
        return str(verdict.get("status") or "invalid_record")
    return parse_status if parse_status != "ok" else "unverified"  # sampled, verification not done yet


def _pick_indexes(statuses: dict[int, str], cap: int) -> list[int]:
    """Up to `cap` sample indexes, taking statuses in turn (lowest index first in each) so all kinds show."""
    by_status: dict[str, list[int]] = collections.defaultdict(list)
    for index in sorted(statuses):
        by_status[statuses[index]].append(index)
    queues = [by_status[s] for s in sorted(by_status, key=lambda s: (s != "pass", s))]
    picked: list[int] = []
    while len(picked) < cap and any(queues):
        for q in queues:
            if q and len(picked) < cap:
                picked.append(q.pop(0))
    return sorted(picked)


def _problem_order(example_id: str) -> str:
    return hashlib.sha1(example_id.encode("utf-8", "surrogatepass")).hexdigest()


def collect_samples(run_dir: str | Path, *, max_problems: int = 200, max_samples_per_problem: int = 8,
                    max_chars: int = 20_000) -> dict[str, Any]:
    """The JSON the page embeds: chosen problems with prompts and samples, status counts, what was left out.

    Streams every shard (samples files can be large) and holds only the (example id, index, parse status) of
    all samples plus full records of the chosen ones.
    """
    run_dir = Path(run_dir)
    warnings: list[str] = []
    iters = _iteration_dirs(run_dir) if run_dir.is_dir() else []
    # Pass 1: which samples exist, with their parse status.
    parse: dict[int, dict[str, dict[int, str]]] = {}
    for k, d in iters:
        parse[k] = collections.defaultdict(dict)
        for rec in _records(_shards(d / "samples"), warnings):
            parse[k][str(rec.get("example_id"))][_as_int(rec.get("index"))] = str(rec.get("parse_status") or "ok")
    all_ids = {eid for per in parse.values() for eid in per}
    chosen = set(sorted(all_ids, key=_problem_order)[:max_problems])

    problems: dict[str, dict[str, Any]] = {eid: {"id": eid, "prompts": [], "samples": []} for eid in chosen}
    counts: dict[int, collections.Counter[str]] = {}
    for k, d in iters:
        # Pass 2: every verdict counts; the chosen problems' verdicts are kept (details trimmed).
        verdicts: dict[tuple[str, int], dict[str, Any]] = {}
        for rec in _records(_shards(d / "verdicts"), warnings):
            eid, index = str(rec.get("example_id")), _as_int(rec.get("index"))
            if index in parse[k].get(eid, {}):
                if eid in chosen:
                    verdicts[(eid, index)] = rec if len(rec.get("details") or ()) <= _DETAILS_KEPT else {
                        **rec, "details": list(rec["details"])[:_DETAILS_KEPT]}
                else:
                    verdicts[(eid, index)] = {"status": rec.get("status")}
        counts[k] = collections.Counter(_status(ps, verdicts.get((eid, i)))
                                        for eid, per in parse[k].items() for i, ps in per.items())
        wanted = {(eid, i) for eid in chosen & parse[k].keys()
                  for i in _pick_indexes({i: _status(ps, verdicts.get((eid, i))) for i, ps in parse[k][eid].items()},
                                         max_samples_per_problem)}
        # Pass 3: the chosen samples' text.
        for rec in _records(_shards(d / "samples"), warnings):
            key = (str(rec.get("example_id")), _as_int(rec.get("index")))
            if key in wanted:
                wanted.discard(key)  # a duplicated record (a resumed shard) shows once
                problems[key[0]]["samples"].append(_sample_json(k, rec, verdicts.get(key), max_chars))
        _add_prompts(k, d, problems, warnings, max_chars)

    for p in problems.values():
        p["samples"].sort(key=lambda s: (s["iteration"], s["index"]))
        p["prompts"] = _merge_prompts(p["prompts"])
    total_samples = sum(len(per_id) for per in parse.values() for per_id in per.values())
    shown_samples = sum(len(p["samples"]) for p in problems.values())
    return {
        "iterations": [k for k, _ in iters],
        "status_counts": {str(k): dict(sorted(c.items())) for k, c in counts.items()},
        "problems": [problems[eid] for eid in sorted(chosen)],
        "omitted": {"problems_total": len(all_ids), "problems_shown": len(chosen), "samples_total": total_samples,
                    "samples_shown": shown_samples, "max_problems": max_problems,
                    "max_samples_per_problem": max_samples_per_problem},
        "warnings": warnings,
    }


def _as_int(x: Any) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return -1


def _sample_json(k: int, rec: Mapping[str, Any], verdict: Mapping[str, Any] | None, max_chars: int) -> dict:
    parse_status = str(rec.get("parse_status") or "ok")
    logprob = rec.get("logprob")
    out = {
        "iteration": k, "index": _as_int(rec.get("index")), "status": _status(parse_status, verdict),
        "parse_status": parse_status, "rationale": _clip(rec.get("rationale"), max_chars),
        "code": _clip(rec.get("code"), max_chars),
        "logprob": logprob if isinstance(logprob, int | float) and math.isfinite(logprob) else None,
        "passed": _clean(verdict.get("passed"), max_chars) if verdict else None,
        "total": _clean(verdict.get("total"), max_chars) if verdict else None,
        "details": _clean(list(verdict.get("details") or ()), max_chars) if verdict else [],
    }
    # The raw completion only where parsing failed: otherwise it is the rationale and code again, twice the size.
    if parse_status != "ok":
        out["completion"] = _clip(rec.get("completion"), max_chars)
    return out


def _add_prompts(k: int, d: Path, problems: dict[str, dict[str, Any]], warnings: list[str],
                 max_chars: int) -> None:
    path = d / "prompts.jsonl.gz"
    if not path.is_file():
        return
    for rec in _records([path], warnings):
        eid = str(rec.get("example_id"))
        if eid in problems:
            problems[eid]["prompts"].append({"iterations": [k], "traced": bool(rec.get("traced")),
                                             "text": _clip(rec.get("prompt"), max_chars)})


def _merge_prompts(prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct prompt text, listing the iterations that showed it (usually all of them)."""
    merged: dict[tuple[str, bool], dict[str, Any]] = {}
    for p in prompts:
        key = (p["text"], p["traced"])
        if key in merged:
            merged[key]["iterations"] += p["iterations"]
        else:
            merged[key] = dict(p)
    return list(merged.values())



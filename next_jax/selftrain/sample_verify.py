"""Sample completions and verify their fixes, overlapped: the decoder never waits for the CPU pool
unless the bounded queue between them is full.

Work is cut into shards of problems (prompts sorted by length, so a shard pads little). The main thread
samples a shard, writes `samples/<shard>`, and hands it to a verifier thread through a queue of
`queue_size` shards; the verifier writes `verdicts/<shard>`. A shard is complete when its verdict file
exists; on restart complete shards are skipped and a shard with samples but no verdicts is only verified,
so every (problem, sample index) appears exactly once. The time the sampler spends blocked on the queue is
reported as `sampler_wait_seconds`.

With several processes each takes every `process_count`-th shard (`distributed.process_share`) and names its
files by its process index; a shard holds the same problems whichever process samples it, so the split does
not change what is sampled. `read_joined` reads every process's files.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from next_jax.data.example import iter_jsonl, write_jsonl
from next_jax.data.fix_check import candidate_for
from next_jax.data.parsing import parse_completion
from next_jax.parallel.distributed import process_share
from next_jax.selftrain.faults import maybe_crash
from next_jax.selftrain.records import Sample, verdict_record
from next_jax.selftrain.rundir import shard_name, shard_order


@dataclasses.dataclass(frozen=True)
class Problem:
    """One prompt to sample: its example id, prompt text and what verifying a fix needs."""

    example_id: str
    prompt: str
    meta: dict[str, Any]  # entry_point, tests, setup
    timeout: float | None = None


class Generate(Protocol):
    """Samples `num_samples` completions of each prompt: a list per prompt of (text, log-prob)."""

    def __call__(self, problems: Sequence[Problem], num_samples: int) -> list[list[tuple[str, float]]]: ...


@dataclasses.dataclass
class StageStats:
    samples: int = 0
    parsed: int = 0
    passed: int = 0
    sample_seconds: float = 0.0
    verify_seconds: float = 0.0
    sampler_wait_seconds: float = 0.0
    wall_seconds: float = 0.0


def shards_of(problems: Sequence[Problem], shard_size: int, length: Callable[[str], int]) -> list[list[Problem]]:
    """Problems sorted by prompt length (then id), cut into shards of `shard_size`."""
    ordered = sorted(problems, key=lambda p: (length(p.prompt), p.example_id))
    return [list(ordered[i : i + shard_size]) for i in range(0, len(ordered), shard_size)]


def _samples_of(shard: Sequence[Problem], texts: list[list[tuple[str, float]]], iteration: int) -> list[Sample]:
    out = []
    for problem, rows in zip(shard, texts, strict=True):
        for index, (text, logprob) in enumerate(rows):
            parsed = parse_completion(text, problem.meta.get("entry_point") or None, problem.meta.get("buggy_code"))
            out.append(Sample(problem.example_id, iteration, index, text, parsed.status, parsed.rationale,
                              parsed.code, float(logprob)))
    return out


def _verify_shard(shard: Sequence[Problem], samples: list[Sample], verify: Callable) -> list[dict[str, Any]]:
    by_id = {p.example_id: p for p in shard}
    jobs, records = [], []
    for s in samples:
        problem = by_id[s.example_id]
        candidate = None
        if s.parse_status == "ok":  # the sample holds the parsed fix: no second parse
            candidate = candidate_for(s.code, f"{s.example_id}#{s.index}", problem.meta, problem.timeout)
        records.append(None if candidate else verdict_record(s.example_id, s.iteration, s.index,
                                                             {"status": s.parse_status}))
        if candidate is not None:
            jobs.append((len(records) - 1, candidate))
    verdicts = verify([c for _, c in jobs]) if jobs else []
    for (slot, _), v in zip(jobs, verdicts, strict=True):
        s = samples[slot]
        records[slot] = verdict_record(s.example_id, s.iteration, s.index, v.to_json())
    return records


def sample_and_verify(
    shards: Sequence[Sequence[Problem]],
    out_dir: str | Path,
    *,
    iteration: int,
    generate: Generate,
    verify: Callable[[list], list],
    num_samples: int,
    queue_size: int = 2,
    process_index: int = 0,
    process_count: int = 1,
    progress: Callable[[int], None] | None = None,
    on_written: Callable[[Path], None] | None = None,
) -> StageStats:
    """Sample and verify this process's shards not yet complete under `out_dir`; returns the stage's counts
    and times (counts over this process's shards, complete ones included). `on_written(path)` is called with
    each samples and verdicts file once written (from the sampling and the verifying thread: it must be
    thread-safe), e.g. to upload it (`run_mirror.py`)."""
    out_dir = Path(out_dir)
    start = time.perf_counter()
    stats = StageStats()
    handoff: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    failure: list[BaseException] = []

    def verifier() -> None:
        while True:
            item = handoff.get()
            if item is None:
                return
            shard, samples, name = item
            if failure:
                continue  # drain after an error so the sampler never blocks forever
            try:
                t = time.perf_counter()
                records = _verify_shard(shard, samples, verify)
                maybe_crash(f"verdicts:{out_dir.name}:{name}")
                write_jsonl(out_dir / "verdicts" / name, records)
                stats.verify_seconds += time.perf_counter() - t
                if on_written is not None:
                    on_written(out_dir / "verdicts" / name)
                if progress is not None:
                    progress(len(shard))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(e)

    thread = threading.Thread(target=verifier, name="selftrain-verify", daemon=True)
    mine = process_share(len(shards), process_index=process_index, process_count=process_count)
    thread.start()
    try:
        for i in mine:
            shard = shards[i]
            if failure:
                break
            name = shard_name(process_index, i)
            samples_path, verdicts_path = out_dir / "samples" / name, out_dir / "verdicts" / name
            if verdicts_path.exists():
                if progress is not None:
                    progress(len(shard))
                continue
            if samples_path.exists():
                samples = [Sample.from_json(d) for d in iter_jsonl(samples_path)]
            else:
                t = time.perf_counter()
                samples = _samples_of(shard, generate(shard, num_samples), iteration)
                write_jsonl(samples_path, (s.to_json() for s in samples))
                stats.sample_seconds += time.perf_counter() - t
                if on_written is not None:
                    on_written(samples_path)
                maybe_crash(f"samples:{out_dir.name}:{name}")
            t = time.perf_counter()
            handoff.put((shard, samples, name))  # blocks while the verifier is `queue_size` shards behind
            stats.sampler_wait_seconds += time.perf_counter() - t
    finally:
        handoff.put(None)
        thread.join()
    if failure:
        raise failure[0]
    for i in mine:
        name = shard_name(process_index, i)
        for rec in iter_jsonl(out_dir / "samples" / name):
            stats.samples += 1
            stats.parsed += rec["parse_status"] == "ok"
        stats.passed += sum(r["status"] == "pass" for r in iter_jsonl(out_dir / "verdicts" / name))
    stats.wall_seconds = time.perf_counter() - start
    return stats


def read_joined(out_dir: str | Path) -> list[tuple[Sample, dict[str, Any]]]:
    """Every sample of a stage (every process's shards) with its verdict record, in shard order."""
    out_dir = Path(out_dir)
    joined = []
    for samples_path in sorted((out_dir / "samples").glob("*.jsonl.gz"), key=lambda p: shard_order(p.name)):
        verdicts = {(r["example_id"], r["index"]): r for r in iter_jsonl(out_dir / "verdicts" / samples_path.name)}
        for d in iter_jsonl(samples_path):
            s = Sample.from_json(d)
            joined.append((s, verdicts[(s.example_id, s.index)]))
    return joined

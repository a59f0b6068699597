"""The NExT self-training loop: base -> (control) -> iterations of hard subset, sample + verify, filter,
fine-tune, evaluate; resumable stage by stage from the run directory (see `rundir.py`).

`self_train(run_dir)` is the gin entry point (`launch/self_train.py`); `SEED` seeds the data draw,
initialisation, sampling and data order.

Several processes (one per host, `next_jax.parallel.distributed`) run the same loop: training is one SPMD
program over all their devices; each samples and verifies its share of the problems; only process 0 writes
shared files (state, data, kept records, summary). Every stage ends at a barrier, after which the others
re-read the state, so all agree on what is done and a restarted run resumes alike on every host.

A URL run directory (`run_mirror.py`): each process runs in a local cache of its own. After every stage's
barrier (when every process's files of the stage are written) each pushes its files (process 0 the shared ones,
`state.json` last), and after a second barrier the others download what they need; each pushes its completed
shards at once. Orbax checkpoints and saved parameters go to the URL directly (`RunDir.checkpoint_path`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gin
import jax

from next_jax.data.example import iter_jsonl, write_jsonl
from next_jax.data.rendering import PromptRenderer
from next_jax.data.time_limits import example_time_limits
from next_jax.execution.backend import make_pool
from next_jax.parallel import distributed
from next_jax.selftrain import export_best as exporting
from next_jax.selftrain import problems as problems_lib
from next_jax.selftrain.batches import count_records, training_batches
from next_jax.selftrain.evaluation import EvalSettings, evaluate_arm
from next_jax.selftrain.faults import maybe_crash
from next_jax.selftrain.filtering import FilterSettings, kept_records
from next_jax.selftrain.floor import dev_floor
from next_jax.selftrain.generation import SamplerGenerate
from next_jax.selftrain.hard_subset import hard_subset_ids
from next_jax.selftrain.model_setup import build_runtime
from next_jax.selftrain.progress import Progress
from next_jax.selftrain.records import sampling_seed
from next_jax.selftrain.run_mirror import RunMirror
from next_jax.selftrain.rundir import RunDir
from next_jax.selftrain.sample_verify import Problem, read_joined, sample_and_verify, shards_of
from next_jax.selftrain.settings import (
    BaseModelSettings,
    FinetuneSettings,
    HardSubsetSettings,
    SampleSettings,
)
from next_jax.selftrain.summary import best_iteration, build_summary, publish
from next_jax.train import checkpoints
from tasks.sources import repair_data_config, token_counter

log = logging.getLogger(__name__)


class Loop:
    """One run's state between stages: run directory, problems, renderer, runtime, pool."""

    def __init__(self, run: RunDir, *, seed: int, trace_format: str, problems_factory: Callable,
                 pool_factory: Callable[[], Any], show_progress: bool, mirror: RunMirror | None = None) -> None:
        self.run, self.seed, self.trace_format = run, seed, trace_format
        self.main, self.share = distributed.is_main(), dict(process_index=jax.process_index(),
                                                             process_count=jax.process_count())
        self.mirror = mirror
        # Sample and verdict shards go to the URL as they complete (a killed host loses at most one).
        self.on_written = self.mirror.push_file if self.mirror else None
        self.sample_settings, self.hard = SampleSettings(), HardSubsetSettings()
        self.filter_settings, self.finetune, self.eval_settings = FilterSettings(), FinetuneSettings(), EvalSettings()
        self.progress = Progress(enabled=show_progress and self.main)
        self.problems = self._problems(problems_factory)
        self.runtime = build_runtime(seed=seed, show_progress=show_progress)
        if self.finetune.peak_learning_rate is not None and not self.runtime.trainer.schedule_per_run:
            # found now, not when the control starts after the base's pretraining
            raise ValueError("FinetuneSettings.peak_learning_rate needs Trainer.schedule_per_run = True")
        self.vocab = self.runtime.vocabulary
        self.count = token_counter(self.vocab)
        self.renderer = PromptRenderer(repair_data_config(), self.count)
        self._pool_factory, self._pool = pool_factory, None
        self._params: dict[str, dict] = {}
        self._rendered: dict[tuple[str, str], tuple[list[Problem], float]] = {}
        self.time_limits: dict[str, float] = {}

    # -- shared pieces ------------------------------------------------------------------------------
    def _problems(self, factory: Callable) -> problems_lib.ProblemSet:
        data = self.run.path("data")
        if not self.run.done("data") and self.main:
            problems_lib.save(factory(), data)
            self.run.complete("data")
        self.sync("data")
        return problems_lib.load(data)

    def measure_time_limits(self) -> None:
        """Per-problem limits from each reference's measured time (EvalPlus's rule, gin `time_limits.policy`),
        measured once in the pool and cached in `RUN/data/reference_times.json`."""
        examples = [*self.problems.pool, *self.problems.dev, *(ex for _, exs in self.problems.extra_evals for ex in exs)]
        cache = self.run.path("data", "reference_times.json")

        def measure() -> dict:
            self.time_limits = example_time_limits(self.pool(), examples, cache)
            return {"problems": len(self.time_limits)}

        self.timed("time_limits", measure, everywhere=False)
        if not self.time_limits:  # resumed, or not process 0: the stage ran before, its times are in the cache
            self.time_limits = example_time_limits(self.pool(), examples, cache)

    def pool(self) -> Any:
        """The verification pool, started on first use."""
        if self._pool is None:
            self._pool = self._pool_factory()
        return self._pool

    def verify(self, candidates: list) -> list:
        return self.pool().verify(candidates)

    def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._pool.close()
        self.runtime.trainer.close()

    def problems_for(self, name: str, examples, fmt: str) -> tuple[list[Problem], float]:
        """Sampling problems of the example set `name` with prompts in `fmt` (rendered once per run), and the
        share of prompts that kept a failing test's trace."""
        if (name, fmt) not in self._rendered:
            out, traced = [], 0
            for ex in examples:
                prompt = self.renderer.prompt(ex, fmt, self.problems.trusted)
                traced += bool(prompt.traced_tests)
                out.append(Problem(ex.id, prompt.text, self.renderer.meta(ex), self.time_limits.get(ex.problem_id)))
            self._rendered[(name, fmt)] = out, (traced / len(out) if out else 0.0)
        return self._rendered[(name, fmt)]

    def generator(self, purpose: str, iteration: int, *, temperature: float, top_p: float,
                  max_new_tokens: int) -> SamplerGenerate:
        """A sampler seeded for (run seed, iteration, purpose); temperature 0 is greedy (no top-k/p)."""
        s = self.sample_settings
        return SamplerGenerate(
            self.runtime.sampler, self.vocab, seed=sampling_seed(self.seed, iteration, purpose),
            max_new_tokens=max_new_tokens, temperature=temperature, top_k=s.top_k if temperature else 0,
            top_p=top_p if temperature else 1.0, rows_per_call=s.rows_per_call,
            max_prompt_tokens=max(self.runtime.sampler.length_buckets),
        )

    def train_generator(self, purpose: str, iteration: int) -> SamplerGenerate:
        s = self.sample_settings
        return self.generator(purpose, iteration, temperature=s.temperature, top_p=s.top_p,
                              max_new_tokens=s.max_new_tokens)

    def params(self, name: str) -> dict:
        """Parameters of a trained model ("base", "control", "iter_K"), from memory or its saved copy."""
        if name not in self._params:
            path = self.run.checkpoint_path(name, "params")
            self._params[name] = self.runtime.load(path) if checkpoints.exists(path) else self.runtime.initial_params
        return self._params[name]

    def sync(self, name: str) -> None:
        """Wait for every process; the others then re-read the stages process 0 recorded (with a URL run
        directory, after the stage's files are exchanged through it)."""
        self.exchange(name)
        if not self.main:
            self.run.reload()

    def exchange(self, name: str) -> None:
        """Barrier `name`, after which every process sees every process's files so far: with a URL run
        directory each pushes its own (after the barrier: all are written), and after a second barrier (every
        push is complete) fetches the others'."""
        distributed.barrier(name)
        if self.mirror is not None:
            self.mirror.push()
            if jax.process_count() > 1:
                distributed.barrier(f"{name} pushed")
                self.mirror.refresh()

    def timed(self, stage: str, fn: Callable[[], Any], *, everywhere: bool = True) -> Any:
        """Run `fn` as `stage` unless complete (on every process, or only on process 0 unless `everywhere`);
        process 0 records its result and seconds; every process returns the recorded result."""
        if not self.run.done(stage):
            start = time.perf_counter()
            result = (fn() or {}) if everywhere or self.main else {}
            result["seconds"] = time.perf_counter() - start
            if self.main:
                self.run.complete(stage, result)
            maybe_crash(f"stage:{stage}")
            log.info("stage %s done in %.1f s", stage, result["seconds"])
        self.sync(stage)
        return self.run.result(stage)

    # -- stages -------------------------------------------------------------------------------------
    def write_demos(self, examples, name: str) -> Path:
        """Prompt/target records of examples with gold rationales (the seed demonstrations)."""
        path = self.run.path("data", f"{name}_{self.trace_format}.jsonl")
        if self.main and not path.exists():
            write_jsonl(path, ({"id": ex.id, "prompt": self.renderer.prompt(ex, self.trace_format, self.problems.trusted).text,
                                "target": self.renderer.target(ex)} for ex in examples))
        self.exchange(f"demos {name}")
        return path

    def train_stage(self, name: str, start: dict, paths: list[Path], steps: int, batch_size: int, seed_offset: int,
                    peak_learning_rate: float | None = None, loss_on_prompt: bool = False):
        batches = lambda: training_batches(  # noqa: E731
            f"selftrain_{name.replace('/', '_')}", paths, batch_size=batch_size, num_steps=steps,
            seed=self.seed * 1009 + seed_offset, vocabulary=self.vocab, loss_on_prompt=loss_on_prompt,
        )
        metrics = self.runtime.train(start, batches, num_steps=steps,
                                     checkpoint_dir=self.run.checkpoint_path(name, "checkpoints"),
                                     params_dir=self.run.checkpoint_path(name, "params"),
                                     log_dir=self.run.path("tensorboard", name.replace("/", "_")),
                                     on_step=lambda step, _: maybe_crash(f"train:{name}:{step}"),
                                     peak_learning_rate=peak_learning_rate)
        self._params[name] = self.runtime.copy_params()
        return {"steps": steps, "final_loss": metrics.get("loss"), "records": [str(p) for p in paths]}

    def finetune_stage(self, name: str, start: dict, paths: list[Path], seed_offset: int):
        """A fine-tune (the control or an iteration's) as `FinetuneSettings` sets them."""
        f = self.finetune
        return self.train_stage(name, start, paths, f.steps, f.batch_size, seed_offset, f.peak_learning_rate)

    def pretrain_base(self, steps: int, batch_size: int, seed_repeats: int = 1, loss_on_prompt: bool = False) -> None:
        if steps <= 0:
            return
        paths = [self.run.path("data", "corpus.jsonl")]
        if self.problems.seed:
            paths += [self.write_demos(self.problems.seed, "seed")] * max(1, seed_repeats)
        self.timed("base", lambda: self.train_stage("base", self.runtime.initial_params, paths, steps, batch_size, 1,
                                                    loss_on_prompt=loss_on_prompt))

    def evaluate(self, name: str, iteration: int) -> dict:
        """EVAL per arm for model `name` (dev with the run's trace format, dev_notrace, extra sets)."""

        def run() -> dict:
            self.runtime.sample_with(self.params(name))
            arms = {"dev": ("dev", self.problems.dev, self.trace_format)}
            if self.eval_settings.notrace and self.trace_format != "none":
                arms["dev_notrace"] = ("dev", self.problems.dev, "none")
            for extra, examples in self.problems.extra_evals:
                arms[extra] = (extra, examples, self.trace_format)
            e = self.eval_settings
            results = {}
            for arm, (set_name, examples, fmt) in arms.items():
                problems, share = self.problems_for(set_name, examples, fmt)
                make = lambda t, purpose: self.generator(purpose, iteration, temperature=t, top_p=e.top_p,  # noqa: E731
                                                         max_new_tokens=e.max_new_tokens)
                n = len(problems) * (2 if self.eval_settings.num_samples else 1)
                with self.progress.bar(f"eval {name} {arm}", n) as bar:
                    results[arm] = evaluate_arm(
                        problems, self.run.path(name, "eval", arm), settings=self.eval_settings, make_generate=make,
                        verify=self.verify, length=self.count, trace_share=share, progress=bar,
                        wait=lambda a=arm: self.exchange(f"eval {name} {a}"), on_written=self.on_written,
                        **self.share,
                    )
            return {"eval": results}

        return self.timed(f"{name}/eval", run)["eval"]

    def kept(self, iterations: range) -> list[dict]:
        """The filter stage's training records (`FilterSettings`) from the samples of `iterations`."""
        joined, prompts = [], {}
        for j in iterations:
            joined += read_joined(self.run.iteration(j))
            for rec in iter_jsonl(self.run.iteration(j) / "prompts.jsonl.gz"):
                prompts[(j, rec["example_id"])] = rec["prompt"]
        problems, _ = self.problems_for("pool", self.problems.pool, self.trace_format)
        buggy = {p.example_id: p.meta["buggy_code"] for p in problems if "buggy_code" in p.meta}
        originals = {ex.id: ex.buggy_code for ex in self.problems.pool}
        return kept_records(joined, prompts, self.filter_settings, buggy, originals)

    def iteration(self, k: int, pool_ids: list[str]) -> None:
        name, prev = f"iter_{k}", ("base" if k == 0 else f"iter_{k - 1}")
        directory = self.run.iteration(k)
        chosen = set(pool_ids)
        problems, share = self.problems_for("pool", self.problems.pool, self.trace_format)
        problems = [p for p in problems if p.example_id in chosen]

        def sample() -> dict:
            if self.main:
                write_jsonl(directory / "prompts.jsonl.gz", ({"example_id": p.example_id, "prompt": p.prompt,
                                                             "traced": self.trace_format != "none"} for p in problems))
            self.runtime.sample_with(self.params(prev))
            s = self.sample_settings
            with self.progress.bar(f"{name} sample+verify", len(problems)) as bar:
                stats = sample_and_verify(
                    shards_of(problems, s.shard_size, self.count), directory, iteration=k,
                    generate=self.train_generator("train", k), verify=self.verify,
                    num_samples=s.num_samples, queue_size=s.queue_size, progress=bar, on_written=self.on_written,
                    **self.share,
                )
            # The slowest process's times. The gather is collective: when it returns, every process has
            # written its shards, so the counts below come from all of them.
            seconds = distributed.allgather([stats.sample_seconds, stats.verify_seconds,
                                             stats.sampler_wait_seconds]).max(axis=0)
            if self.mirror is not None:  # and with a URL, fetched from it
                self.exchange(f"{name} samples")
            joined = read_joined(directory)
            solved = {sv.example_id for sv, v in joined if v["status"] == "pass"}
            return {"problems": len(problems), "samples": len(joined),
                    "parsed": sum(sv.parse_status == "ok" for sv, _ in joined),
                    "passed": sum(v["status"] == "pass" for _, v in joined), "problems_solved": len(solved),
                    "trace_share": share, "sample_seconds": float(seconds[0]), "verify_seconds": float(seconds[1]),
                    "sampler_wait_seconds": float(seconds[2])}

        log.info("%s: %.1f%% of prompts keep a failing test's trace", name, 100 * share)
        self.timed(f"{name}/sample", sample)

        def filter_() -> dict:
            kept = self.kept(range(0 if self.filter_settings.accumulate else k, k + 1))
            write_jsonl(directory / "kept.jsonl", kept)
            return {"kept": len(kept)}

        self.timed(f"{name}/filter", filter_, everywhere=False)
        paths = [directory / "kept.jsonl"]
        if self.finetune.include_seed and self.problems.seed:
            paths.append(self.write_demos(self.problems.seed, "seed"))
        start = self.params("base") if self.finetune.from_base else self.params(prev)

        def train() -> dict:
            if count_records(paths) == 0:
                # Nothing passed and no seed set: the iteration's model is the one it would have trained from.
                log.warning("%s: no kept samples and no seed demonstrations; fine-tuning skipped", name)
                self.runtime.save(start, self.run.checkpoint_path(name, "params"))
                self._params[name] = start
                return {"steps": 0, "skipped": "no training records"}
            return self.finetune_stage(name, start, paths, 200 + k)

        self.timed(f"{name}/train", train)
        self.evaluate(name, k)


@gin.configurable(module="next_jax.selftrain")
def self_train(
    run_dir: str,
    *,
    seed: int = 0,
    num_iterations: int = 3,
    problems: Callable[[], problems_lib.ProblemSet] = gin.REQUIRED,
    trace_format: str = "inline",
    control: bool = True,
    pool_workers: int = 2,
    pool_timeout: float = 5.0,
    export_best: bool = True,
    reference_time_limits: bool = True,
    show_progress: bool = True,
    pool_factory: Callable[[], Any] | None = None,
    mirror: RunMirror | None = None,
) -> dict[str, Any]:
    """Run (or resume) self-training in `run_dir`; returns the summary written to `RUN/summary.json`.

    `problems` is a factory (gin: `@synthetic_problems` or `@mbpp_r_problems`, unevaluated) called once;
    `pool_factory` replaces the sandboxed verification pool (tests only). With `reference_time_limits`, each
    problem's fixes get `max(floor, factor x its reference's time)` (gin `time_limits.policy`) instead of
    `pool_timeout`. `mirror` (a URL run directory, `run_mirror.py`) exchanges `run_dir`, this process's local
    cache, with the URL after every stage and at the end.
    """
    run = RunDir(run_dir, label=mirror.url if mirror is not None else None,
                 orbax_root=mirror.orbax_root if mirror is not None else None)
    distributed.barrier("start")  # every process has read state.json before process 0 writes it again
    # The gin-selected backend (`pool_backend`: local by default, or Ray), same interface either way.
    factory = pool_factory or (lambda: make_pool(workers=pool_workers, timeout=pool_timeout))
    loop = Loop(run, seed=seed, trace_format=trace_format, problems_factory=problems, pool_factory=factory,
                show_progress=show_progress, mirror=mirror)
    try:
        base = BaseModelSettings()
        if reference_time_limits:
            loop.measure_time_limits()
        loop.pretrain_base(base.pretrain_steps, base.pretrain_batch_size, base.seed_repeats, base.loss_on_prompt)
        loop.evaluate("base", -1)
        dev_floor(loop)
        if control and loop.problems.seed:
            seed_path = loop.write_demos(loop.problems.seed, "seed")
            loop.timed("control", lambda: loop.finetune_stage("control", loop.params("base"), [seed_path], 100))
            loop.evaluate("control", -2)
        pool_ids = hard_subset_ids(loop)
        for k in range(num_iterations):
            loop.iteration(k, pool_ids)
            publish(run, build_summary(run, seed=seed, num_iterations=num_iterations), final=False)
        summary = build_summary(run, seed=seed, num_iterations=num_iterations)
        best = best_iteration(summary)
        if export_best and best is not None:
            loop.timed("export_best", lambda: exporting.export_best(loop, best))
        summary = build_summary(run, seed=seed, num_iterations=num_iterations)
        publish(run, summary, final=True)
        if loop.mirror is not None:
            loop.mirror.push()
        return summary
    except BaseException:
        if loop.mirror is not None:
            loop.mirror.push_best_effort()  # shards and stages done so far; state.json still last
        raise
    finally:
        loop.close()


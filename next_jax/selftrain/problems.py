"""The problems a run works on: the training pool, the dev set (and further eval sets), the seed
demonstrations and the base model's pretraining corpus, fixed once per run under `RUN/data/`.

`synthetic` (the embedded, offline default) draws all of them from the seeded generator, split by a hash of
the reference program and deduplicated by the normalised buggy program; `mbpp_r` reads a built MBPP-R
(train pool, validation as dev) and optionally HeFix+ (an extra eval set with its hidden tests).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import gin

from next_jax.data.example import RepairExample, iter_jsonl, read_examples, write_examples, write_jsonl
from next_jax.data.prompts import in_process_tracer, program_pair, reading_pair
from next_jax.data.synthetic import FAMILIES, iter_programs_with_calls, selftrain_splits, three_way_split


@dataclasses.dataclass(frozen=True)
class ProblemSet:
    """What one run trains and evaluates on. `trusted`: programs are ours (traced in-process)."""

    pool: tuple[RepairExample, ...]
    dev: tuple[RepairExample, ...]
    seed: tuple[RepairExample, ...] = ()
    extra_evals: tuple[tuple[str, tuple[RepairExample, ...]], ...] = ()
    corpus: tuple[dict[str, str], ...] = ()  # pretraining pairs {"prompt", "target"}
    trusted: bool = False


@gin.configurable(module="next_jax.selftrain")
def synthetic_problems(
    seed: int = 0,
    num_seed: int = 200,
    num_pool: int = 1024,
    num_dev: int = 256,
    num_programs: int = 4000,
    dev_percent: int = 20,
    seed_percent: int = 20,
    corpus_layout: str | None = None,
    reading_share: float = 0.0,
    reading_format: str = "inline",
    template_family: str = "standard",
) -> ProblemSet:
    """The embedded default: seed demos (with gold rationales), training pool and dev from the generator,
    and `num_programs` pretraining pairs of programs (none of a dev reference) in `corpus_layout` (default:
    the repair prompts' own, `repair_data_config.layout`): description -> program, and for a share
    `reading_share` of them description + the program traced in `reading_format` -> the program
    (`prompts.reading_pair`: reading a program across its trace, no repair; use the run's trace format).
    `template_family`: the generator's programs (`synthetic.FAMILIES`: "standard", or "micro" for tiny models)."""
    if template_family not in FAMILIES:
        raise ValueError(f"unknown template family {template_family!r}; one of {sorted(FAMILIES)}")
    templates = sorted(FAMILIES[template_family])
    from tasks.sources import repair_data_config

    config = repair_data_config()
    if corpus_layout is None:
        corpus_layout = config.layout
    tracer = in_process_tracer(**dict(config.budgets))  # the programs are ours: traced in-process
    pick = random.Random(f"reading:{seed}")
    splits = selftrain_splits(
        seed, {"seed": num_seed, "pool": num_pool, "dev": num_dev},
        dev_percent=dev_percent, seed_percent=seed_percent, templates=templates,
    )
    programs = iter_programs_with_calls(
        seed, exclude=lambda code: three_way_split(code, dev_percent, seed_percent) == "dev", templates=templates)
    corpus = []
    for _ in range(num_programs):
        description, code, call = next(programs)
        if pick.random() < reading_share:
            corpus.append(reading_pair(description, code, call, reading_format, tracer=tracer,
                                       layout=corpus_layout, budget=config.prompt_budget))
        else:
            corpus.append(program_pair(description, code, layout=corpus_layout))
    return ProblemSet(
        pool=tuple(splits["pool"]), dev=tuple(splits["dev"]), seed=tuple(splits["seed"]),
        corpus=tuple(corpus), trusted=True,
    )


@gin.configurable(module="next_jax.selftrain")
def mbpp_r_problems(
    root: str | None = None,
    max_pool: int | None = None,
    max_dev: int | None = None,
    hefix_plus: bool = True,
) -> ProblemSet:
    """A built MBPP-R under `root` (`launch/build_mbpp_r.py`): train as the pool, validation as dev; and
    HeFix+ (`root/hefix_plus/test.jsonl`) as an extra eval set when asked for. `root` defaults to
    `repair_data_config.root` (where the SeqIO tasks read the same files)."""
    if root is None:
        from tasks.sources import repair_data_config

        root = repair_data_config().root
    base = Path(root)
    for needed in (base / "mbpp_r" / "train.jsonl", base / "mbpp_r" / "validation.jsonl"):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} not found: build MBPP-R with launch/build_mbpp_r.py --out={root}")
    pool = read_examples(base / "mbpp_r" / "train.jsonl")[:max_pool]
    dev = read_examples(base / "mbpp_r" / "validation.jsonl")[:max_dev]
    extra = []
    hefix = base / "hefix_plus" / "test.jsonl"
    if hefix_plus:
        if not hefix.exists():
            raise FileNotFoundError(f"{hefix} not found: build it with launch/build_mbpp_r.py --hefix_plus")
        extra.append(("hefix_plus", tuple(read_examples(hefix))))
    return ProblemSet(pool=tuple(pool), dev=tuple(dev), extra_evals=tuple(extra), trusted=False)


def save(problems: ProblemSet, directory: Path) -> None:
    """Write a problem set under `directory` (examples as JSON lines, the rest as JSON)."""
    write_examples(directory / "pool.jsonl", problems.pool)
    write_examples(directory / "dev.jsonl", problems.dev)
    write_examples(directory / "seed.jsonl", problems.seed)
    write_jsonl(directory / "corpus.jsonl", problems.corpus)
    for name, examples in problems.extra_evals:
        write_examples(directory / f"eval_{name}.jsonl", examples)
    meta = {"trusted": problems.trusted, "extra_evals": [name for name, _ in problems.extra_evals]}
    (directory / "problems.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")


def load(directory: Path) -> ProblemSet:
    """Read what `save` wrote."""
    meta = json.loads((directory / "problems.json").read_text(encoding="utf-8"))
    return ProblemSet(
        pool=tuple(read_examples(directory / "pool.jsonl")),
        dev=tuple(read_examples(directory / "dev.jsonl")),
        seed=tuple(read_examples(directory / "seed.jsonl")),
        extra_evals=tuple((n, tuple(read_examples(directory / f"eval_{n}.jsonl"))) for n in meta["extra_evals"]),
        corpus=tuple(iter_jsonl(directory / "corpus.jsonl")),
        trusted=bool(meta["trusted"]),
    )

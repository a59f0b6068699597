"""Downloading the public benchmark files through TFDS, for users without `../shared/data`.

- `download(name, download_dir)`: one upstream file (MBPP, HumanEval, HumanEvalFix, HumanEval+), pinned to
  the upstream commit or release our tests use, fetched by a TFDS `DownloadManager` and checked against its
  sha256; pass the path to the matching reader in `readers.py`.
- `NextMbpp`: a versioned TFDS builder of MBPP with the standard splits (prompt 1-10, test 11-510,
  validation 511-600, train 601-974). It downloads `mbpp.jsonl`, or takes it from `manual_dir` when there
  (offline). `read_mbpp_tfds` loads a split as `MbppProblem`s through the same record parser as `read_mbpp`.

A malformed record is reported with its location and skipped, as in the local readers: at build time (not
JSON, missing fields) with file and line, at read time (no entry point, code that does not parse) with the
TFDS split and record number. This module imports tensorflow_datasets; `readers.py` does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from next_jax.data.readers import Loaded, MbppProblem, ReadIssue, parse_mbpp_record

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PublicFile:
    url: str
    sha256: str
    filename: str  # the name the readers and ../shared/data use


# The versions in ../shared/data (see its README): same bytes, so the tests' figures hold for a download.
PUBLIC_FILES = {
    "mbpp": PublicFile(
        "https://raw.githubusercontent.com/google-research/google-research/"
        "30adf0ec5f35f9609c2f1d896005e184195d9146/mbpp/mbpp.jsonl",
        "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f",
        "mbpp.jsonl",
    ),
    "humaneval": PublicFile(
        "https://raw.githubusercontent.com/openai/human-eval/"
        "6d43fb980f9fee3c892a914eda09951f772ad10d/data/HumanEval.jsonl.gz",
        "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        "HumanEval.jsonl.gz",
    ),
    "humanevalfix": PublicFile(
        "https://raw.githubusercontent.com/bigcode-project/octopack/e17a8f6470264286bc6a52eb8263582083bf3bf6/"
        "evaluation/create/humaneval-x/data/python/data/humanevalpack.jsonl",
        "b1376d72be4bd016a62ad043d9de3846edb8d63edf1222da802a31330c14c3a7",
        "humanevalpack.jsonl",
    ),
    "evalplus": PublicFile(
        "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz",
        "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
        "HumanEvalPlus.jsonl.gz",
    ),
}


def _is_pinned(path: Path, expected: PublicFile) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == expected.sha256


def _fetch(name: str, dl_manager: tfds.download.DownloadManager) -> Path:
    """The file from `manual_dir` if it holds it, else downloaded.

    A download must match the pinned sha256. A file the user supplies may be another version of the data
    (their choice), so a mismatch is only logged.
    """
    spec = PUBLIC_FILES[name]
    try:
        manual = Path(dl_manager.manual_dir)
    except AssertionError:  # TFDS's way of saying no manual directory was given, or it does not exist
        manual = None
    if manual is not None:
        local = manual / spec.filename
        if local.exists():
            if not _is_pinned(local, spec):
                log.warning("%s is not the pinned version of %s (sha256 %s)", local, spec.url, spec.sha256)
            return local
    path = Path(dl_manager.download(spec.url))
    if not _is_pinned(path, spec):
        raise ValueError(
            f"{path}: downloaded from {spec.url}, but its sha256 is not the pinned {spec.sha256}"
        )
    return path


def download(name: str, download_dir: str | Path, manual_dir: str | Path | None = None) -> Path:
    """Local path of public file `name` (a key of `PUBLIC_FILES`), downloaded into `download_dir` once."""
    if name not in PUBLIC_FILES:
        raise KeyError(f"unknown public file {name!r}; known: {sorted(PUBLIC_FILES)}")
    manager = tfds.download.DownloadManager(
        download_dir=str(download_dir), manual_dir=None if manual_dir is None else str(manual_dir)
    )
    return _fetch(name, manager)


MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
_TEXT_FIELDS = ("text", "code", "test_setup_code")
_LIST_FIELDS = ("test_list", "challenge_test_list")


def _raw_record(rec: Any) -> dict[str, Any]:
    """The upstream fields as the builder stores them; raises on a record the features cannot hold."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    out: dict[str, Any] = {"task_id": int(rec["task_id"])}
    for key in _TEXT_FIELDS:
        value = rec.get(key) or ""
        if not isinstance(value, str):
            raise TypeError(f"field {key!r} is {type(value).__name__}, expected str")
        out[key] = value
    for key in _LIST_FIELDS:
        value = rec.get(key) or []
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise TypeError(f"field {key!r} must be a list of strings")
        out[key] = value
    return out


class NextMbpp(tfds.core.GeneratorBasedBuilder):
    """MBPP (Austin et al. 2021), the upstream records by standard split; see docs/data.md."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "google-research mbpp.jsonl at 30adf0ec (974 problems)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Optional: a directory holding mbpp.jsonl, used instead of downloading."
    code_path = None  # no metadata files next to this code (see tfds_mbpp_r.MbppR)

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return tfds.core.DatasetInfo(
            builder=self,
            description="MBPP: 974 crowd-sourced Python problems with reference solutions and tests.",
            features=tfds.features.FeaturesDict(
                {
                    "task_id": tfds.features.Scalar(dtype=np.int32),
                    **{k: text for k in _TEXT_FIELDS},
                    **{k: tfds.features.Sequence(text) for k in _LIST_FIELDS},
                }
            ),
            homepage="https://github.com/google-research/google-research/tree/master/mbpp",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in MBPP_SPLITS}
        for rec in _raw_records(_fetch("mbpp", dl_manager)):
            for name, (lo, hi) in MBPP_SPLITS.items():
                if lo <= rec["task_id"] <= hi:
                    by_split[name].append(rec)
        # TFDS cannot write an empty split (a user's partial file): leave it out
        return {name: self._generate_examples(recs) for name, recs in by_split.items() if recs}

    def _generate_examples(self, records: list[dict[str, Any]]):
        for rec in records:
            yield rec["task_id"], rec


def _raw_records(path: Path) -> list[dict[str, Any]]:
    """The file's well-formed records; each malformed one is logged with its file and line, and skipped."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(_raw_record(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                log.warning(
                    "skipping malformed MBPP record %s",
                    ReadIssue(str(path), lineno, f"{type(e).__name__}: {e}"),
                )
    return out


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def read_mbpp_tfds(
    data_dir: str | Path, split: str = "train", manual_dir: str | Path | None = None
) -> Loaded[MbppProblem]:
    """MBPP problems of `split` from the `NextMbpp` dataset under `data_dir`, prepared first if needed.

    A record the parser rejects is reported as `<dataset dir>[<split>]:<record number>` and skipped.
    """
    builder = NextMbpp(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else str(manual_dir)
        )
    )
    where = f"{builder.data_dir}[{split}]"
    out: Loaded[MbppProblem] = Loaded([], [])
    rows = builder.as_dataset(split=split, shuffle_files=False)
    for i, row in enumerate(sorted(tfds.as_numpy(rows), key=lambda r: int(r["task_id"])), 1):
        rec = {k: _text(row[k]) for k in _TEXT_FIELDS}
        rec.update({k: [_text(s) for s in row[k]] for k in _LIST_FIELDS})
        rec["task_id"] = int(row["task_id"])
        try:
            out.records.append(parse_mbpp_record(rec))
        except (ValueError, KeyError, TypeError, SyntaxError) as e:
            issue = ReadIssue(where, i, f"task {rec['task_id']}: {type(e).__name__}: {e}")
            log.warning("skipping malformed record %s", issue)
            out.issues.append(issue)
    return out

"""TFDS downloads of the public files and the TFDS MBPP dataset, offline: downloads are served from
../shared/data by a patched `DownloadManager.download`, which also records the URLs asked for."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

tfds = pytest.importorskip("tensorflow_datasets")
from next_jax.data import readers, tfds_public  # noqa: E402

LOCAL = {
    "mbpp": "mbpp/mbpp.jsonl",
    "humaneval": "humaneval/HumanEval.jsonl.gz",
    "humanevalfix": "humanevalfix/humanevalpack.jsonl",
    "evalplus": "evalplus/HumanEvalPlus.jsonl.gz",
}


@pytest.fixture
def served(monkeypatch, data_dir, tmp_path):
    """Serve each pinned URL from its local copy (a copy, as a download would be); returns the URLs asked."""
    by_url = {spec.url: data_dir / LOCAL[name] for name, spec in tfds_public.PUBLIC_FILES.items()}
    asked: list[str] = []

    def download(self, url):
        asked.append(url)
        dest = tmp_path / "served" / by_url[url].name
        dest.parent.mkdir(exist_ok=True)
        shutil.copy(by_url[url], dest)
        return dest

    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    return asked


@pytest.mark.parametrize(
    "name,reader,count",
    [
        ("mbpp", readers.read_mbpp, 974),
        ("humaneval", readers.read_humaneval, 164),
        ("humanevalfix", readers.read_humanevalfix, 164),
        ("evalplus", readers.read_evalplus, 164),
    ],
)
def test_download_fetches_the_pinned_file_for_its_reader(served, tmp_path, name, reader, count):
    path = tfds_public.download(name, tmp_path / "downloads")
    assert served == [tfds_public.PUBLIC_FILES[name].url]
    loaded = reader(path)
    assert len(loaded.records) == count and not loaded.issues


def test_a_download_that_is_not_the_pinned_file_is_an_error(monkeypatch, tmp_path):
    def download(self, url):
        (tmp_path / "mbpp.jsonl").write_text("{}\n")
        return tmp_path / "mbpp.jsonl"

    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    with pytest.raises(ValueError, match="sha256"):
        tfds_public.download("mbpp", tmp_path / "downloads")
    with pytest.raises(KeyError, match="known"):
        tfds_public.download("apps", tmp_path / "downloads")


def test_tfds_mbpp_downloads_and_matches_the_local_reader(served, tmp_path, data_dir):
    local = readers.read_mbpp(data_dir / "mbpp" / "mbpp.jsonl").records
    train = tfds_public.read_mbpp_tfds(tmp_path / "tfds", "train")
    assert served == [tfds_public.PUBLIC_FILES["mbpp"].url]
    assert train.records == [p for p in local if 601 <= p.task_id <= 974] and not train.issues
    builder = tfds_public.NextMbpp(data_dir=str(tmp_path / "tfds"))
    assert str(builder.info.version) == "1.0.0"
    assert {s: builder.info.splits[s].num_examples for s in tfds_public.MBPP_SPLITS} == {
        "prompt": 10,
        "test": 500,
        "validation": 90,
        "train": 374,
    }
    # prepared once: a second read downloads nothing
    val = tfds_public.read_mbpp_tfds(tmp_path / "tfds", "validation")
    assert len(served) == 1 and [p.task_id for p in val.records] == list(range(511, 601))


def test_tfds_mbpp_reports_and_skips_malformed_records(tmp_path, data_dir, caplog):
    lines = (data_dir / "mbpp" / "mbpp.jsonl").read_text().splitlines()[600:603]  # tasks 601-603
    bad_code = {**json.loads(lines[1]), "code": "def broken(:\n    pass\n"}
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "mbpp.jsonl").write_text(
        "\n".join([lines[0], "not json", json.dumps(bad_code), json.dumps({"text": "no id"}), lines[2]])
        + "\n"
    )
    with caplog.at_level(logging.WARNING):
        loaded = tfds_public.read_mbpp_tfds(tmp_path / "tfds", "train", manual_dir=manual)
    assert [p.task_id for p in loaded.records] == [601, 603]
    # build time: not JSON (line 2) and no task_id (line 4), with file and line
    assert f"{manual / 'mbpp.jsonl'}:2: JSONDecodeError" in caplog.text
    assert f"{manual / 'mbpp.jsonl'}:4: KeyError" in caplog.text
    assert "is not the pinned version" in caplog.text
    # read time: the code that does not parse, with split and record number
    assert len(loaded.issues) == 1
    issue = loaded.issues[0]
    assert issue.path.endswith("[train]") and issue.line == 2 and "task 602" in issue.reason
    assert "SyntaxError" in issue.reason and str(issue) in caplog.text

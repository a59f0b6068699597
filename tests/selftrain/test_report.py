"""The HTML report: content, escaping of hostile model output, caps, and (with Chromium) the filters in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from next_jax.selftrain.report import collect_samples, script_json, write_report
from next_jax.selftrain.summary_table import format_summary_table, summary_table

CHROMIUM_TIMEOUT_S = 60


def _embedded_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', page, re.S)
    assert m, "data tag missing"
    return json.loads(m.group(1))


def test_report_written_with_table_values(fake_run) -> None:
    out = write_report(fake_run.path)
    assert out == fake_run.path / "report.html"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for cell in ("41.2 ± 1.3", "20.0 ± 5.7", "16.0 ± 5.2", "iter 2 *", "62.0", "2/3", "41.5", "tiny_cpu"):
        assert cell in page, cell
    assert '<tr class="best"><td>iter 2 *</td>' in page
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page  # the figure, inline
    for stable_id in ("filter-status", "filter-iteration", "shown-count", "summary-table", "status-counts"):
        assert f'id="{stable_id}"' in page
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "http://" not in page and "https://" not in page


def test_hostile_completion_cannot_escape_the_data_tag(fake_run) -> None:
    page = write_report(fake_run.path).read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "</script><script>" not in page
    # Exactly the page's own two script elements close; the data holds its strings escaped.
    assert page.count("</script>") == 2 and page.count("<script") == 2
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in page
    assert "<!--" not in page
    data = _embedded_data(page)
    shown = [s for p in data["problems"] for s in p["samples"]]
    # Round-trips intact.
    assert any(fake_run.HOSTILE in s["code"] and fake_run.NON_ASCII in s["rationale"] for s in shown)
    assert any(fake_run.HOSTILE in s.get("completion", "") for s in shown)  # raw completion of a parse failure
    assert any(fake_run.HOSTILE in json.dumps(s["details"]) for s in shown)
    # The page script never parses strings as HTML.
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


def test_script_json_escapes_everything_that_could_close_a_tag() -> None:
    text = script_json({"a": "</script><!-- & \u2028 \ud800", "b": float("1.5")})
    assert not set(text) & {"<", ">", "&"} and text.isascii()
    assert json.loads(text) == {"a": "</script><!-- & \u2028 \ud800", "b": 1.5}


def test_samples_joined_with_verdicts_and_counted(fake_run) -> None:
    data = collect_samples(fake_run.path)
    assert data["iterations"] == [1, 2]
    assert data["status_counts"]["1"]["pass"] == fake_run.count("pass", 1) == 3
    assert data["status_counts"]["2"]["pass"] == fake_run.count("pass", 2) == 5
    assert sum(data["status_counts"]["2"].values()) == 12
    assert [p["id"] for p in data["problems"]] == ["mbpp/11", "mbpp/12", "mbpp/13"]
    by_key = {(v["iteration"], v["example_id"], v["index"]): v for v in fake_run.verdicts}
    for p in data["problems"]:
        assert len(p["prompts"]) == 1 and p["prompts"][0]["iterations"] == [1, 2]  # same prompt, shown once
        assert "# (3) total=4" in p["prompts"][0]["text"]
        for s in p["samples"]:
            v = by_key[(s["iteration"], p["id"], s["index"])]
            assert (s["status"], s["passed"], s["total"]) == (v["status"], v["passed"], v["total"])
    assert data["omitted"]["samples_total"] == data["omitted"]["samples_shown"] == 24
    assert data["warnings"] == []


def test_caps_are_deterministic_and_reported(fake_run) -> None:
    data = collect_samples(fake_run.path, max_problems=2, max_samples_per_problem=2)
    assert data == collect_samples(fake_run.path, max_problems=2, max_samples_per_problem=2)
    assert len(data["problems"]) == 2
    for p in data["problems"]:
        for k in (1, 2):
            picked = [s for s in p["samples"] if s["iteration"] == k]
            assert len(picked) == 2
            statuses = [st for (kk, eid, _), st in _statuses(fake_run).items() if kk == k and eid == p["id"]]
            if "pass" in statuses and len(set(statuses)) > 1:  # statuses taken in turn: a pass and a non-pass
                assert {s["status"] == "pass" for s in picked} == {True, False}
    om = data["omitted"]
    assert (om["problems_total"], om["problems_shown"], om["samples_total"], om["samples_shown"]) == (3, 2, 24, 8)
    page = write_report(fake_run.path, fake_run.path / "small.html", max_problems=2,
                        max_samples_per_problem=2).read_text(encoding="utf-8")
    assert "Showing 8 of 24 samples from 2 of 3 problems (1 problems and 16 samples left out" in page


def _statuses(run) -> dict[tuple[int, str, int], str]:
    return {(v["iteration"], v["example_id"], v["index"]): v["status"] for v in run.verdicts}


def test_partial_run_and_damaged_shard(tmp_path: Path, fake_run) -> None:
    # No summary, no verdicts for iteration 2 (verification still running), a truncated shard in iteration 1.
    (fake_run.path / "summary.json").unlink()
    shutil.rmtree(fake_run.path / "iter_2" / "verdicts")
    shard = sorted((fake_run.path / "iter_1" / "verdicts").iterdir())[1]
    shard.write_bytes(shard.read_bytes()[:30])
    page = write_report(fake_run.path).read_text(encoding="utf-8")
    data = _embedded_data(page)
    assert data["status_counts"]["2"]["parse_truncated"] == 1 and data["status_counts"]["2"]["unverified"] == 11
    assert len(data["warnings"]) == 1 and "stopped reading" in data["warnings"][0]
    assert 'class="warnings"' in page
    # An empty directory still gets a page.
    empty = write_report(tmp_path / "empty_run")
    assert "No samples yet." in empty.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------------------
# In a browser: headless Chromium loads the page, applies the filters preset by the URL hash, and screenshots it.


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium not installed: apt-get install chromium")


def _live_in_group(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies left to init are not running)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def _run_chromium(args: list[str], profile: Path) -> str:
    """Run headless Chromium in its own process group; kill the whole group on timeout and afterwards."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--disable-crash-reporter", f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish in {CHROMIUM_TIMEOUT_S} s: {' '.join(cmd)}")
    finally:
        try:  # helpers (zygote, crashpad) live in the same group: none may outlive the test
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if Path("/proc").is_dir():  # SIGKILL is delivered asynchronously: give the group a moment to die
        deadline = time.monotonic() + 10
        while (live := _live_in_group(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live == [], f"chromium processes left running: {live}"
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode("utf-8")


class _Cards(HTMLParser):
    """Sample cards of a dumped DOM: (data-status, data-iteration, hidden); and #shown-count's text."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[tuple[str, str, bool]] = []
        self.shown_count = ""
        self._in_count = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "sample" in (a.get("class") or "").split():
            self.cards.append((a.get("data-status", ""), a.get("data-iteration", ""), "hidden" in a))
        self._in_count = a.get("id") == "shown-count"

    def handle_data(self, data: str) -> None:
        if self._in_count:
            self.shown_count += data
            self._in_count = False


def test_filters_in_headless_chromium(fake_run, tmp_path: Path) -> None:
    _chromium()
    page = write_report(fake_run.path)
    dom = _run_chromium(["--dump-dom", page.as_uri() + "#status=pass&iteration=1"], tmp_path / "profile")
    cards = _Cards()
    cards.feed(dom)
    assert len(cards.cards) == 24
    visible = [(st, it) for st, it, hidden in cards.cards if not hidden]
    assert visible == [("pass", "1")] * fake_run.count("pass", 1)
    assert int(cards.shown_count) == fake_run.count("pass", 1) == 3
    # The hostile text is shown as text, and no element came out of it.
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script>alert(1)" not in dom
    assert fake_run.NON_ASCII in dom

    dom = _run_chromium(["--dump-dom", page.as_uri() + "#status=not-pass&iteration=2"], tmp_path / "profile")
    cards = _Cards()
    cards.feed(dom)
    visible = [(st, it) for st, it, hidden in cards.cards if not hidden]
    assert len(visible) == int(cards.shown_count) == 12 - fake_run.count("pass", 2)
    assert all(st != "pass" and it == "2" for st, it in visible)


def test_screenshot_in_headless_chromium(fake_run, tmp_path: Path) -> None:
    _chromium()
    page = write_report(fake_run.path)
    shot = tmp_path / "report.png"
    _run_chromium([f"--screenshot={shot}", "--window-size=1280,2200", "--hide-scrollbars", page.as_uri()],
                  tmp_path / "profile")
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 30_000  # a blank or error page compresses far smaller
    if out := os.environ.get("NEXT_JAX_REPORT_SCREENSHOT"):  # to look at it by hand
        shutil.copy(shot, out)


# ------------------------------------------------------------------------------------------------------------
# The plain-text summary table printed at the end of a run.


def test_summary_table_text(fake_run) -> None:
    text = format_summary_table(fake_run.summary)
    lines = text.splitlines()
    assert lines[0] == "run tiny_cpu (seed 7)"
    rows = {line.split("  ")[0].strip(): line for line in lines if line.startswith(("base", "control", "iter"))}
    assert list(rows) == ["base", "control", "iter 1", "iter 2 *"]
    assert "20.0 ± 5.7" in rows["base"] and "16.0 ± 5.2" in rows["base"]
    assert rows["control"].split()[1:6] == ["50", "24.0", "±", "6.0", "-"]  # control_notrace is null
    assert rows["iter 2 *"].split()[-11:] == ["12", "11", "5", "5", "3/3", "50.0", "11.0", "3.0", "41.5", "7.5", "0.5"]
    assert "41.2 ± 1.3" in rows["iter 2 *"] and "62.0" in rows["iter 2 *"]
    assert "+6.0 ± 3.1" in rows["iter 1"] and "- control" in lines[2]  # iteration minus control, paired
    assert all(len(line) <= len(lines[2]) for line in lines[1:-1]) and len(rows["iter 1"]) == len(lines[2])
    assert lines[-1] == "* best iteration"
    assert "@1" in lines[2] and "@4" in lines[2] and "sampler wait" in lines[2]


def test_summary_table_nulls_and_empty() -> None:
    text = format_summary_table({"seed": 1, "config_name": "c", "best_iteration": None, "base": None,
                                 "base_notrace": None, "control": None, "control_notrace": None, "iterations": []})
    body = [line for line in text.splitlines() if line.startswith(("base", "control", "iter"))]
    assert [line.split()[0] for line in body] == ["base", "control"]
    assert all(set(line.split()[1:]) == {"-"} for line in body)
    assert "pass@" not in text and text.endswith("no best iteration\n")
    # Missing keys, junk values and extra keys are all tolerated.
    text = format_summary_table({"iterations": [{"iteration": 3, "dev": {"greedy_fix_rate": 0.5, "x": 1},
                                                 "train": None, "seconds": {"sample": "slow"}}]})
    assert "iter 3" in text and "50.0" in text and "run ? (seed ?)" in text
    assert summary_table({}).rows == (("base", "-", "-", "-", *[""] * 12), ("control", "-", "-", "-", *[""] * 12))


def test_paired_difference_is_the_rates_difference_on_common_problems() -> None:
    from next_jax.selftrain.summary import paired_difference

    model = {"a": True, "b": True, "c": False, "d": True, "only_model": True}
    control = {"a": False, "b": True, "c": True, "d": False, "only_control": False}
    d = paired_difference(model, control)
    assert d["problems"] == 4 and d["greedy_fix_rate"] == (3 - 2) / 4
    diffs = [1, 0, -1, 1]
    var = sum((x - 0.25) ** 2 for x in diffs) / 3
    assert abs(d["stderr"] - (var / 4) ** 0.5) < 1e-12
    assert paired_difference({"a": True}, {"a": False}) is None  # one problem: no stderr
    assert paired_difference(model, {}) is None  # no control

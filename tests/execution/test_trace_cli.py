"""The trace CLI: runs the program inside the sandbox and prints inline, scratchpad or JSON traces."""

import json
import subprocess
import sys

PROGRAM = "def f(n, xs):\n    total = 0\n    for x in xs:\n        total += x * n\n    xs.append(total)\n    return total\n"


def _run(tmp_path, *args):
    path = tmp_path / "prog.py"
    path.write_text(PROGRAM)
    return subprocess.run([sys.executable, "-m", "next_jax.execution.trace", str(path), *args],
                          capture_output=True, text=True, timeout=120)


def test_json_format(tmp_path):
    out = _run(tmp_path, "--call", "f(2, [1, 3])", "--format", "json")
    assert out.returncode == 0, out.stderr
    trace = json.loads(out.stdout)
    assert trace["result"] == {"return": "8"} and trace["truncated"] is False
    steps = trace["steps"]
    assert [s["step"] for s in steps] == sorted(s["step"] for s in steps)
    assert all(1 <= s["line"] <= 6 for s in steps)
    totals = [s["changes"]["total"] for s in steps if "total" in s["changes"]]
    assert totals == ["0", "2", "8"]
    # in-place mutation shows on the line that ran it
    assert any(s["line"] == 5 and s["changes"].get("xs") == "[1, 3, 8]" for s in steps)


def test_inline_and_exception(tmp_path):
    out = _run(tmp_path, "--call", "f(1, [1, 2, 3, 4, 5])")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    loop_line = next(line for line in lines if line.lstrip().startswith("total += x * n"))
    assert "..." in loop_line  # visited five times: first two states, ..., the last
    assert "__return__=15" in out.stdout
    bad = _run(tmp_path, "--call", "f(1, None)", "--format", "json")
    result = json.loads(bad.stdout)["result"]
    assert result["exception"]["type"] == "TypeError" and result["exception"]["line"] == 3


def test_syntax_error_is_reported(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def f(:\n")
    out = subprocess.run([sys.executable, "-m", "next_jax.execution.trace", str(path), "--call", "f()"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "syntax error" in out.stderr

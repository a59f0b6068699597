"""The verification CLI on a small JSONL with good, hostile and malformed records."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]

READ_INPUT = r'''
import re
def probe():
    found = []
    for path in ($paths):
        try:
            found += re.findall(r"RT[0-9a-f]{32}", open(path).read())
        except OSError as e:
            pass
    return found[0] if found else "unreadable"
'''


def _records(input_path: pathlib.Path, token: str) -> list[bytes]:
    """Input lines and, per line, the (id, status) the CLI must write (None: no output for a blank line)."""
    ok = {"id": "ok", "code": "def f(x):\n    return x + 1\n", "tests": ["assert f(1) == 2", "assert f(2) == 3"]}
    wrong = {"id": "wrong", "code": "def f(x):\n    return x\n", "tests": ["assert f(1) == 2"]}
    setup = {"id": "setup", "code": "def f(x):\n    return x * 3\n", "tests": ["assert f(2) == 2 * K"], "setup": "K = 3"}
    loop = {"id": "loop", "code": "while True:\n    pass\n", "tests": ["assert f(1) == 2"]}
    paths = [str(input_path), str(input_path.resolve())]
    leak = {"id": "leak", "code": READ_INPUT.replace("$paths", repr(paths)[1:-1] + ","),
            "tests": [f"assert probe() == {token!r}"]}
    giant = {"id": "giant", "code": "x = 1\n" * 200_000, "tests": ["assert x == 1"]}
    lines = [
        (json.dumps(ok), ("ok", "pass")),
        (b"\xff\xfe not utf-8 \x80\n", ("line-2", "invalid_record")),
        ("this is not json", ("line-3", "invalid_record")),
        (json.dumps(wrong), ("wrong", "fail")),
        ("", None),
        (json.dumps({"id": "missing"}), ("missing", "invalid_record")),
        (json.dumps({"id": "tests-str", "code": "x = 1", "tests": "assert x == 1"}), ("tests-str", "invalid_record")),
        (json.dumps({"id": "tests-int", "code": "x = 1", "tests": ["assert x == 1", 3]}), ("tests-int", "invalid_record")),
        (json.dumps({"id": "no-tests", "code": "x = 1", "tests": []}), ("no-tests", "invalid_record")),
        (json.dumps([1, 2, 3]), ("line-10", "invalid_record")),
        ("[" * 100_000 + "]" * 100_000, ("line-11", "invalid_record")),
        (json.dumps(giant), ("giant", "invalid_record")),
        (json.dumps(loop), ("loop", "timeout")),
        (json.dumps(leak), ("leak", "fail")),
        (json.dumps(setup), ("setup", "pass")),
        (json.dumps({**ok, "id": 17}), ("17", "pass")),
    ]
    return lines


def test_cli_judges_every_line_in_order(tmp_path, host_sentinel):
    token = "RT" + secrets.token_hex(16)
    # The input sits where only the sandbox keeps candidates out of it (a world-readable file in the repo), and
    # carries a secret in a test the leak record tries to find by reading the file.
    input_path = host_sentinel["repo"] / f"cli-input-{os.getpid()}.jsonl"
    lines = _records(input_path, token)
    secret_record = json.dumps({"id": "secret-holder", "code": "def g():\n    return 0\n",
                                "tests": [f"assert g() == {token!r}"]})
    lines.append((secret_record, ("secret-holder", "fail")))
    with open(input_path, "wb") as f:
        for text, _ in lines:
            f.write(text if isinstance(text, bytes) else text.encode() + b"\n")
    os.chmod(input_path, 0o644)
    output_path = tmp_path / "out.jsonl"
    try:
        proc = subprocess.run([sys.executable, "-m", "next_jax.execution.verify", str(input_path), str(output_path),
                               "--workers", "2", "--timeout", "3"], cwd=REPO, capture_output=True, text=True,
                              timeout=240)
    finally:
        input_path.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(line) for line in output_path.read_text().splitlines()]
    expected = [e for _, e in lines if e is not None]
    assert [(r["id"], r["status"]) for r in out] == expected, out
    for record in out:
        assert set(record) >= {"id", "status", "passed", "total", "details"}
        if record["status"] == "invalid_record":
            assert record["details"] and record["details"][0]["message"]
    by_id = {r["id"]: r for r in out}
    assert (by_id["ok"]["passed"], by_id["ok"]["total"]) == (2, 2)
    assert by_id["leak"]["details"][0]["got"] == "'unreadable'", by_id["leak"]
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["total"] == len(expected)
    assert summary["invalid_record"] == sum(1 for e in expected if e[1] == "invalid_record")


def test_cli_rejects_a_missing_input_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "next_jax.execution.verify", str(tmp_path / "absent.jsonl"),
                           str(tmp_path / "out.jsonl")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "absent.jsonl" in proc.stderr

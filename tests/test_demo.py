"""The README's main job (`launch/demo.py`) runs offline and judges its honest, wrong and cheating fixes right."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_and_only_the_honest_fix_passes():
    done = subprocess.run([sys.executable, str(ROOT / "launch" / "demo.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = dict(re.findall(r"^  (\S.*?)\s{2,}(pass|fail|timeout|runtime_error|memory)\b", done.stdout, re.M))
    assert verdicts.pop("honest fix") == "pass", done.stdout
    assert verdicts and "pass" not in verdicts.values(), verdicts
    assert "# (" in done.stdout  # the inline trace of the failing test was rendered

"""docs/console.md tells the truth: each Python snippet runs as pasted and prints what the doc says.

(The same convention as tests/docs on main: a ```text block introduced by "prints:" is the output.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"
SNIPPETS = re.findall(r"```python\n(.*?)```\n\nIt prints:\n\n```text\n(.*?)```", DOC.read_text(), re.S)


def test_every_snippet_says_what_it_prints() -> None:
    assert len(SNIPPETS) == DOC.read_text().count("```python") >= 2


@pytest.mark.parametrize(("snippet", "output"), SNIPPETS, ids=[f"snippet-{i}" for i in range(len(SNIPPETS))])
def test_a_snippet_runs_as_pasted(snippet: str, output: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    ran = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == output

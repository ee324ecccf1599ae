"""docs/identity-modes.md: its Python snippet runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity-modes.md"


def test_the_wiring_snippet_runs_as_written(tmp_path: Path) -> None:
    snippets = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(snippets) == 1
    script = tmp_path / "snippet.py"
    script.write_text(snippets[0], encoding="utf-8")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["token_exchange", "id_jag"]
    assert lines[0].split(" -> ")[1] != lines[1].split(" -> ")[1]  # the IdP, then the server's own AS

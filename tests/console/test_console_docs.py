"""docs/console.md tells the truth: each of its Python snippets runs as pasted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_snippets() -> None:
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet-{index}" for index in range(len(SNIPPETS))])
def test_a_snippet_runs_as_pasted(snippet: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(snippet, str(DOC), "exec"), {"__name__": "__docs__"})
    printed = capsys.readouterr().out
    assert "Traceback" not in printed
    if "recent(2)" in snippet:
        assert "refused 401 refresh_rejected: the SSO grant of user 'alice' was revoked" in printed
    else:
        assert printed.strip().endswith("True")

"""`mcp-idfwd bench`: runs benchmarks as child processes, reports their exit status, writes results."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


def test_unknown_benchmark_names_are_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "single_flight", "no_such_bench"]) == 2
    assert "no_such_bench" in capsys.readouterr().err


def test_a_quick_run_prints_the_table_and_writes_the_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "RESULTS.md"
    assert main(["bench", "single_flight", "--quick", "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    written = results.read_text()
    assert "mcp-idfwd bench single_flight --quick --results" in written
    assert "## bench/single_flight.py" in written
    for text in (printed, written):
        assert text.count("| PASS") == 3
        assert "FAIL" not in text
    assert "single_flight           0" in printed

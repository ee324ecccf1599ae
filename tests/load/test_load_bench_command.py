"""`mcp-idfwd bench`: runs benchmarks as child processes, reports their exit status, writes results."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.commands import bench
from harness.commands._bench_figures import HEADLINE_BEGIN, HEADLINE_END

UNITS = {"us", "ms", "s", "req/s", "ops/s", "x", "count", "B"}
# verify.py's peers come with the bench extra; without it their rows are left out.
OPTIONAL_PEERS = [name for name in ("fastmcp", "authlib", "joserfc") if importlib.util.find_spec(name)]
VERIFIERS = ["ours_fresh", "ours_hit", "pyjwkclient", "pyjwt_floor", *OPTIONAL_PEERS]


def test_unknown_benchmark_names_are_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "single_flight", "no_such_bench"]) == 2
    assert "no_such_bench" in capsys.readouterr().err


def _check_figure(figure: dict[str, Any]) -> None:
    assert isinstance(figure["name"], str) and figure["name"]
    assert isinstance(figure["label"], str) and figure["label"]
    assert figure["unit"] in UNITS
    assert isinstance(figure["value"], float) and math.isfinite(figure["value"])
    assert isinstance(figure["headline"], bool)
    samples = figure["samples"]
    if samples is not None:
        assert samples["repeats"] >= 3
        assert samples["n"] >= samples["repeats"] * 20  # --quick: 20 samples per repeat
        assert len(samples["repeat_medians"]) == samples["repeats"]
        assert 0 < samples["min"] <= samples["median"] <= samples["p95"]
        # The figure is the median of the repeat medians, in the same unit as the samples.
        assert min(samples["repeat_medians"]) <= figure["value"] <= max(samples["repeat_medians"])


def test_a_quick_run_writes_every_figure_as_json_and_the_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, figures_file = tmp_path / "RESULTS.md", tmp_path / "figures.json"
    argv = ["bench", "single_flight", "verify", "--quick"]
    argv += ["--results", str(results), "--json", str(figures_file)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    document = json.loads(figures_file.read_text())
    written = results.read_text()

    assert document["command"] == ["mcp-idfwd", *argv]
    assert [b["name"] for b in document["benchmarks"]] == ["single_flight", "verify"]
    for benchmark in document["benchmarks"]:
        assert benchmark["exit_status"] == 0
        assert benchmark["argv"] == ["--quick"]
        for figure in benchmark["figures"]:
            _check_figure(figure)
    single_flight, verify = (
        {f["name"]: f for f in benchmark["figures"]} for benchmark in document["benchmarks"]
    )
    counts = {name: figure["value"] for name, figure in single_flight.items() if name.endswith("token_calls")}
    assert counts == {
        "one_user_cold.issue_token_calls": 1.0,
        "many_users_cold.issue_token_calls": 20.0,
        "many_users_warm.issue_token_calls": 0.0,
    }

    # Every verifier on every algorithm, measured, with a ratio to ours beside each other one.
    for alg in ("RS256", "ES256", "EdDSA"):
        for verifier in VERIFIERS:
            figure = verify[f"{alg}.{verifier}"]
            assert figure["unit"] == "us" and figure["samples"]["batch"] == 5
            if verifier != "ours_fresh":
                # Paired repeat by repeat: the median of the repeats' median ratios.
                ours = verify[f"{alg}.ours_fresh"]["samples"]["repeat_medians"]
                ratios = sorted(a / b for a, b in zip(figure["samples"]["repeat_medians"], ours, strict=True))
                assert verify[f"{alg}.{verifier}_over_ours_fresh"]["value"] == pytest.approx(ratios[1])

    assert "mcp-idfwd bench single_flight verify --quick --results" in written
    assert "## bench/single_flight.py" in written and "## bench/verify.py" in written
    headline = written.split(HEADLINE_BEGIN)[1].split(HEADLINE_END)[0]
    assert "| verify | JWKSTokenVerifier, cache hit, ES256 |" in headline
    assert "| single_flight | issue-token calls for 20 concurrent calls, 1 user, cold cache | 1 |" in headline
    for text in (printed, written):
        assert text.count("| PASS") == 3
        assert "FAIL" not in text
    assert "single_flight           0" in printed


def test_a_benchmark_that_should_write_figures_and_does_not_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "silent.py").write_text("print('a table')\n")
    monkeypatch.setattr(bench, "bench_dir", lambda: tmp_path / "bench")
    monkeypatch.setattr(bench, "BENCHMARKS", {"silent": bench.Benchmark()})
    figures_file = tmp_path / "figures.json"

    assert main(["bench", "--json", str(figures_file)]) == 1
    assert "silent wrote no figures" in capsys.readouterr().err
    (outcome,) = json.loads(figures_file.read_text())["benchmarks"]
    assert (outcome["name"], outcome["exit_status"], outcome["figures"]) == ("silent", 1, [])

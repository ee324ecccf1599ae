"""The README's benchmark figures are RESULTS.md's headline figures, copied by bench/readme_figures.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]


def _readme_figures() -> ModuleType:
    # bench/ holds scripts, not a package: load the generator from its file.
    spec = importlib.util.spec_from_file_location("readme_figures", REPO_DIR / "bench" / "readme_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme_figures = _readme_figures()


def test_the_readme_shows_the_headline_figures_of_results_md() -> None:
    assert readme_figures.main(["--check"]) == 0
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    block = readme.split(readme_figures.README_BEGIN)[1].split(readme_figures.README_END)[0]
    assert "| benchmark | figure | value | how measured |" in block
    assert "at commit `" in block


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    readme, results = tmp_path / "README.md", tmp_path / "RESULTS.md"
    readme.write_text((REPO_DIR / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    results.write_text((REPO_DIR / "bench" / "RESULTS.md").read_text(encoding="utf-8"), encoding="utf-8")
    return readme, results


def test_a_figure_changed_in_results_md_is_caught_and_then_copied(
    copies: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    readme, results = copies
    text = results.read_text(encoding="utf-8")
    head, table = text.split("<!-- headline-figures:begin -->")
    table = table.replace(" |", " 7 |", 3)  # a value no run printed
    results.write_text(head + "<!-- headline-figures:begin -->" + table, encoding="utf-8")
    options = ["--readme", str(readme), "--results", str(results)]

    assert readme_figures.main(["--check", *options]) == 1
    assert "disagrees with" in capsys.readouterr().err
    assert readme_figures.main(options) == 0
    assert readme_figures.main(["--check", *options]) == 0
    assert table.split("<!-- headline-figures:end -->")[0].strip() in readme.read_text(encoding="utf-8")


def test_results_without_headline_figures_get_a_one_line_error(
    copies: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    readme, results = copies
    results.write_text("# Benchmark results\n\nno figures here\n", encoding="utf-8")
    before = readme.read_text(encoding="utf-8")

    assert readme_figures.main(["--readme", str(readme), "--results", str(results)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "headline-figures:begin" in error
    assert readme.read_text(encoding="utf-8") == before

"""docs/harness.md's example test, run as another project would: its own directory, no conftest, the plugin
found through its `pytest11` entry point."""

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

HARNESS_DOC = Path(__file__).resolve().parents[2] / "docs" / "harness.md"


def _documented_example() -> str:
    text = HARNESS_DOC.read_text(encoding="utf-8")
    (example,) = [block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "idfwd_" in block]
    return example


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    plugins = {entry.name: entry.value for entry in entry_points(group="pytest11")}
    assert plugins.get("idfwd") == "harness.pytest_plugin"


_SETTINGS_OVERRIDE = """
import pytest
from harness.stack import StackSettings


@pytest.fixture(scope="session")
def idfwd_stack_settings():
    return StackSettings(alg="ES256", token_ttl=120)
"""

_SETTINGS_CHECK = """
import httpx


def test_the_overridden_settings_are_used(idfwd_issuer):
    keys = httpx.get(idfwd_issuer.url + "/.well-known/jwks.json").json()["keys"]
    assert {key["kty"] for key in keys} == {"EC"}
"""


def test_the_documented_example_passes_in_another_project(tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(_documented_example(), encoding="utf-8")
    # The same project also overrides the stack's settings the documented way.
    (tmp_path / "conftest.py").write_text(_SETTINGS_OVERRIDE, encoding="utf-8")
    (tmp_path / "test_settings.py").write_text(_SETTINGS_CHECK, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3 passed" in completed.stdout


def test_loading_the_plugin_imports_none_of_the_stack() -> None:
    heavy = ["fake_enterprise", "fake_mcp_server", "client_runtime", "harness.stack"]
    probe = f"import sys, harness.pytest_plugin; print(sorted(set({heavy!r}) & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "[]", completed.stderr

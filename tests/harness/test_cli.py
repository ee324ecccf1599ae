import subprocess
import sys

from harness.cli import build_parser


def test_every_command_is_registered() -> None:
    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"demo", "up", "issuer", "server", "call", "conformance", "bench"} <= names


def test_python_dash_m_harness_prints_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "mcp-idfwd" in out.stdout

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


def test_call_takes_the_examples_old_arguments_spelling_as_args() -> None:
    common = [
        "call",
        "--issuer=http://127.0.0.1:1",
        "--secret=s",
        "--tenant=t",
        "--server=http://127.0.0.1:2/mcp",
    ]
    common += ["--user=u", "--tool=echo"]
    assert build_parser().parse_args([*common, "--args", '{"text": "a"}']).args == {"text": "a"}
    assert build_parser().parse_args([*common, "--arguments", '{"text": "b"}']).args == {"text": "b"}

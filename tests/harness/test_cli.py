import subprocess
import sys

import pytest

from harness.cli import build_parser, main
from harness.servers import bind_loopback


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


@pytest.mark.parametrize(
    ("command", "flag"),
    [("up", "--issuer-port"), ("up", "--server-port"), ("issuer", "--port"), ("server", "--port")],
)
def test_a_port_in_use_is_named_with_the_flag_that_moves_it(
    command: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with bind_loopback() as taken:
        port = taken.getsockname()[1]
        argv = [command, f"{flag}={port}"]
        if command == "up":
            other = "--server-port" if flag == "--issuer-port" else "--issuer-port"
            argv.append(f"{other}=0")
        if command == "server":
            argv.append("--issuer=http://127.0.0.1:9")
        assert main(argv) == 1
    prefix = {"up": "mcp-idfwd up: cannot start", "issuer": "mcp-idfwd issuer", "server": "mcp-idfwd server"}
    or_free = "or 0 for a free one" if command == "up" else "or --port=0 for a free one"
    assert capsys.readouterr().err == (
        f"{prefix[command]}: cannot listen on 127.0.0.1:{port}: it is in use"
        f" (choose another with {flag}, {or_free})\n"
    )

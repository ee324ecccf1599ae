"""`mcp-idfwd decode` and the CLI's own edges: --version, a closed pipe, Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from harness.cli import main, package_version
from harness.stack import LocalStack

AUDIENCE = "http://127.0.0.1:1/mcp"


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mcp-idfwd {package_version()}"
    assert package_version()[0].isdigit()


def test_decode_shows_header_claims_and_window_but_never_the_token(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    token = local_stack.admin.mint({"sub": "s-1", "aud": AUDIENCE}, ttl=300)
    assert main(["decode", token]) == 0
    out = capsys.readouterr().out
    assert '"sub": "s-1"' in out and '"alg": "RS256"' in out
    assert "expires: " in out and " UTC (in " in out
    assert "status: within its validity window" in out
    assert "signature: not checked" in out
    assert token not in out
    assert token.split(".")[2] not in out


def test_decode_reads_stdin_and_verifies_against_the_issuer(local_stack: LocalStack) -> None:
    token = local_stack.admin.mint({"sub": "s-2", "aud": AUDIENCE})
    out = subprocess.run(
        [sys.executable, "-m", "harness", "decode", "-", "--issuer", local_stack.issuer_url, "--json"],
        input=f"Bearer {token}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["claims"]["sub"] == "s-2"
    assert result["signature"]["verified"] is True


def test_decode_says_when_the_signature_does_not_verify(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    token = local_stack.admin.mint({"sub": "s-3", "aud": AUDIENCE})
    head, payload, signature = token.split(".")
    forged = ".".join((head, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")))
    assert main(["decode", forged, "--issuer", local_stack.issuer_url]) == 1
    assert "signature: not verified" in capsys.readouterr().out


def test_decode_refuses_an_unsigned_token_for_verification(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    token = local_stack.admin.mint({"sub": "s-4"}, header={"alg": "none"})
    assert main(["decode", token, "--issuer", local_stack.issuer_url]) == 1
    assert "'none' is not an asymmetric" in capsys.readouterr().out


def test_decode_shows_an_expired_token_as_expired(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    token = local_stack.admin.mint({"sub": "s-5"}, ttl=-120)
    assert main(["decode", token]) == 0
    out = capsys.readouterr().out
    assert "status: expired" in out and "ago)" in out


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not-a-token", "3 dot-separated parts"),
        ("e30.bm90anNvbg.sig", "payload is not base64url-encoded JSON"),
        ("W10.e30.sig", "header is not a JSON object"),
    ],
)
def test_decode_names_what_is_wrong_with_a_non_jwt(
    text: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", text]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and reason in err


def test_decode_refuses_plain_http_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "e30.e30.sig", "--issuer", "http://issuer.example"]) == 2
    assert "https" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code"),
    # argparse itself swallows the error of writing help; our own output ends with SIGPIPE's code.
    [(["--help"], 0), (["decode", "e30.e30.sig"], 141)],
)
def test_a_closed_pipe_ends_quietly(argv: list[str], code: int) -> None:
    # `mcp-idfwd ... | head -1` where the reader is already gone: no BrokenPipeError traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "harness", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert out.stderr == ""
    assert out.returncode == code


def test_the_cli_module_imports_nothing_heavy() -> None:
    # Heavy imports happen inside main(), where a Ctrl-C is caught; importing the module is instant.
    code = "import sys, harness.cli; print(sorted({'mcp', 'uvicorn', 'httpx'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


class _InterruptedImport(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        raise KeyboardInterrupt


def test_ctrl_c_while_the_commands_import_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "harness.commands", _InterruptedImport("harness.commands"))
    assert main(["--version"]) == 130
    assert capsys.readouterr().err == "interrupted\n"

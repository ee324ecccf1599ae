import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.conformance import (
    CASES,
    ConformanceSetupError,
    Expect,
    Target,
    Verdict,
    parse_challenge,
    run_battery,
)
from harness.servers import ServedApp
from harness.stack import LocalStack

AUDIENCE_CASES = {"wrong-aud", "aud-suffixed", "aud-array-without-server"}


def test_the_battery_covers_every_defect_the_issue_names() -> None:
    names = {case.name for case in CASES}
    assert {
        "valid-token", "alg-none", "hs256-with-public-key", "embedded-jwk", "jku-header", "x5u-header",
        "unknown-kid", "no-kid", "bad-signature", "stripped-signature", "expired", "not-yet-valid",
        "iat-in-future", "wrong-aud", "aud-array-without-server", "wrong-iss", "missing-sub", "unknown-crit",
        "oversized-token", "malformed-two-segments", "malformed-base64", "malformed-json", "no-token",
        "wrong-scheme",
    } <= names  # fmt: skip
    assert len(names) == len(CASES)
    assert [case.name for case in CASES if case.expect is Expect.ACCEPT] == ["valid-token"]


def test_the_projects_own_server_passes_every_case(local_stack: LocalStack) -> None:
    one_key_before = len(local_stack.admin.jwks()["keys"]) == 1
    report = run_battery(Target(local_stack.server_url, local_stack.issuer_url, local_stack.admin_secret))
    not_passed = {r.name: (r.observed_status, r.observed_challenge, r.detail) for r in report.results
                  if r.verdict is not Verdict.PASS}  # fmt: skip
    assert not_passed == {}
    assert report.exit_code == 0
    by_name = {result.name: result for result in report.results}
    assert by_name["valid-token"].observed_status == 200
    assert by_name["alg-none"].observed_status == 401
    assert by_name["alg-none"].observed_challenge == "Bearer error=invalid_token"
    assert by_name["no-token"].observed_challenge == "Bearer"
    # With one key in the JWKS the battery rotates the issuer's key to test no-kid, and says so.
    assert any("rotated" in note for note in report.notes) == one_key_before
    assert len(local_stack.admin.jwks()["keys"]) >= 2


def test_an_audience_blind_server_is_caught(local_stack: LocalStack, weak_server: ServedApp) -> None:
    report = run_battery(Target(weak_server.url + "/mcp", local_stack.issuer_url, local_stack.admin_secret))
    failed = {result.name for result in report.results if result.verdict is Verdict.FAIL}
    assert failed == AUDIENCE_CASES
    assert all(
        result.observed_status == 200 and "ACCEPTED" in result.detail
        for result in report.results
        if result.name in AUDIENCE_CASES
    )
    assert report.exit_code == 1


def test_a_server_that_follows_jku_is_caught_fetching_it(
    local_stack: LocalStack, jku_trusting_server: ServedApp
) -> None:
    report = run_battery(
        Target(jku_trusting_server.url + "/mcp", local_stack.issuer_url, local_stack.admin_secret)
    )
    (jku,) = [result for result in report.results if result.name == "jku-header"]
    assert jku.verdict is Verdict.FAIL
    assert jku.observed_status == 200
    assert "ACCEPTED" in jku.detail
    assert "the server fetched the URL named in the token (/jwks.json)" in jku.detail
    failed = {result.name for result in report.results if result.verdict is Verdict.FAIL}
    assert failed == AUDIENCE_CASES | {"jku-header"}


def test_refusing_the_valid_token_fails_and_says_why(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--secret", local_stack.admin_secret, "--audience", "http://127.0.0.1:9/elsewhere/mcp",
            "--case", "alg-none", "--case", "expired", "--format", "json"]  # fmt: skip
    assert main(argv) == 1
    document = json.loads(capsys.readouterr().out)
    assert [result["name"] for result in document["results"]] == ["valid-token", "alg-none", "expired"]
    assert document["results"][0]["verdict"] == "fail"
    assert document["results"][0]["observed_status"] == 401
    assert any("valid token was refused" in note for note in document["notes"])


def test_cli_exits_non_zero_against_the_weak_server_and_writes_valid_junit(
    local_stack: LocalStack, weak_server: ServedApp, tmp_path: Path
) -> None:
    output = tmp_path / "conformance.xml"
    command = [
        sys.executable, "-m", "harness", "conformance", "--server", weak_server.url + "/mcp",
        "--issuer-admin", local_stack.issuer_url, "--secret", local_stack.admin_secret,
        "--format", "junit", "--output", str(output),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1, completed.stderr
    assert local_stack.admin_secret not in completed.stdout + completed.stderr

    suites = ET.parse(output).getroot()
    assert suites.tag == "testsuites"
    (suite,) = suites.findall("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [case.name for case in CASES]
    assert all(case.get("classname") and float(case.get("time", "x")) >= 0 for case in cases)
    failed = {case.get("name") for case in cases if case.find("failure") is not None}
    assert failed == AUDIENCE_CASES
    assert suite.get("tests") == str(len(CASES))
    assert suite.get("failures") == str(len(AUDIENCE_CASES))
    assert suite.get("errors") == "0"
    assert all(case.find("failure").get("message") for case in cases if case.get("name") in failed)


def test_cli_json_report_against_the_projects_own_server(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--secret", local_stack.admin_secret, "--format", "json"]  # fmt: skip
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == 0
    assert document["summary"]["pass"] == len(CASES)
    assert [result["name"] for result in document["results"]] == [case.name for case in CASES]
    control = document["results"][0]
    observed = (control["expected_status"], control["observed_status"], control["verdict"])
    assert observed == ("2xx", 200, "pass")


def test_cli_table_report(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--secret", local_stack.admin_secret]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "CONFORMANT: 27 cases (27 pass)" in out
    for case in CASES:
        assert case.name in out


def test_wrong_admin_secret_is_a_setup_error(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConformanceSetupError):
        run_battery(Target(local_stack.server_url, local_stack.issuer_url, "not-the-secret"))
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--secret", "not-the-secret"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "conformance:" in err and "invalid_token" in err and "not-the-secret" not in err


def test_unreachable_server_makes_every_case_an_error(local_stack: LocalStack) -> None:
    report = run_battery(Target("http://127.0.0.1:9/mcp", local_stack.issuer_url, local_stack.admin_secret))
    assert {result.verdict for result in report.results} == {Verdict.ERROR}
    assert report.exit_code == 2


@pytest.mark.parametrize(
    ("value", "scheme", "params"),
    [
        ('Bearer error="invalid_token", error_description="expired"',
         "Bearer", {"error": "invalid_token", "error_description": "expired"}),
        ('Bearer realm="a, b", error="invalid_token"', "Bearer", {"realm": "a, b", "error": "invalid_token"}),
        ('Bearer error_description="say \\"hi\\"",error=invalid_token',
         "Bearer", {"error_description": 'say "hi"', "error": "invalid_token"}),
        ('Bearer resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp"',
         "Bearer", {"resource_metadata": "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp"}),
        ("Bearer", "Bearer", {}),
        ("Basic realm=x", "Basic", {"realm": "x"}),
    ],
)  # fmt: skip
def test_parse_challenge(value: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(value)
    assert challenge is not None
    assert (challenge.scheme, challenge.params) == (scheme, params)


def test_parse_challenge_of_nothing() -> None:
    assert parse_challenge(None) is None
    assert parse_challenge("   ") is None

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cli import main
from harness.conformance import (
    CASES,
    ConformanceSetupError,
    Expect,
    Requirement,
    ServerUnreachable,
    Target,
    Verdict,
    parse_challenge,
    run_battery,
)
from harness.conformance.exchange import Observed
from harness.conformance.judging import judge
from harness.servers import ServedApp
from harness.stack import LocalStack

AUDIENCE_CASES = {"wrong-aud", "aud-suffixed", "aud-array-without-server"}
# Issue 9's server-side cases; the raw-JSON ones need /admin/mint's raw_header/raw_claims (C5).
ISSUE_9_CASES = {"cross-tenant-session", "huge-exp", "huge-nbf", "huge-iat", "exp-beyond-double",
                 "duplicate-header-alg", "duplicate-claim-sub", "long-lifetime"}  # fmt: skip
RAW_JSON_CASES = {"exp-beyond-double", "duplicate-header-alg", "duplicate-claim-sub"}
BY_NAME = {case.name: case for case in CASES}


def _only(*names: str) -> list[str]:
    return [argument for name in names for argument in ("--case", name)]


def test_the_battery_covers_every_defect_the_issue_names() -> None:
    names = {case.name for case in CASES}
    assert {
        "valid-token", "alg-none", "hs256-with-public-key", "embedded-jwk", "jku-header", "x5u-header",
        "unknown-kid", "no-kid", "bad-signature", "stripped-signature", "expired", "not-yet-valid",
        "iat-in-future", "wrong-aud", "aud-array-without-server", "wrong-iss", "missing-sub", "unknown-crit",
        "oversized-token", "malformed-two-segments", "malformed-base64", "malformed-json", "no-token",
        "wrong-scheme", *ISSUE_9_CASES,
    } <= names  # fmt: skip
    assert len(names) == len(CASES)
    assert [case.name for case in CASES if case.expect is Expect.ACCEPT] == ["valid-token"]


def test_every_case_names_its_source_and_only_unrequired_refusals_are_strict() -> None:
    assert all(case.source.strip() for case in CASES)
    strict = {case.name for case in CASES if case.requirement is Requirement.STRICT}
    assert {"iat-in-future", "oversized-token", "long-lifetime", "duplicate-claim-sub"} <= strict
    assert {"alg-none", "wrong-aud", "expired", "huge-nbf", "cross-tenant-session"}.isdisjoint(strict)


def test_the_projects_own_server_passes_every_case(local_stack: LocalStack) -> None:
    one_key_before = len(local_stack.admin.jwks()["keys"]) == 1
    target = Target(local_stack.server_url, local_stack.issuer_url, local_stack.admin_secret, strict=True)
    report = run_battery(target, CASES)
    not_passed = {r.name: (r.observed_status, r.observed_challenge, r.detail) for r in report.results
                  if r.verdict is not Verdict.PASS}  # fmt: skip
    assert not_passed == {}
    assert report.exit_code == 0
    by_name = {result.name: result for result in report.results}
    assert by_name["valid-token"].observed_status == 200
    assert by_name["alg-none"].observed_status == 401
    assert by_name["alg-none"].observed_challenge == "Bearer error=invalid_token"
    assert by_name["no-token"].observed_challenge == "Bearer"
    assert by_name["cross-tenant-session"].observed_status == 404
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


def _issue_9_verdicts(target: Target) -> dict[str, tuple[Verdict, str]]:
    cases = [case for case in CASES if case.expect is Expect.ACCEPT or case.name in ISSUE_9_CASES]
    report = run_battery(target, cases)
    return {result.name: (result.verdict, result.detail) for result in report.results}


def test_the_issue_9_cases_catch_a_careless_server(
    local_stack: LocalStack, careless_server: ServedApp
) -> None:
    target = Target(careless_server.url + "/mcp", local_stack.issuer_url, local_stack.admin_secret)
    verdicts = _issue_9_verdicts(target)
    assert verdicts["valid-token"][0] is Verdict.PASS
    # alice of globex took over alice of acme's session: the server keys users by username.
    assert verdicts["cross-tenant-session"][0] is Verdict.FAIL
    assert verdicts["cross-tenant-session"][1].startswith("ACCEPTED a token it must refuse")
    assert verdicts["huge-exp"] == (Verdict.FAIL, "server error 500 instead of a 401 refusal [exp=10**400]")
    assert verdicts["huge-nbf"][0] is Verdict.PASS
    assert verdicts["long-lifetime"][0] is Verdict.WARN
    assert verdicts["long-lifetime"][1].startswith(
        "accepted: only the strict profile (--strict) refuses this"
    )
    strict = _issue_9_verdicts(replace(target, strict=True))
    assert strict["long-lifetime"][0] is Verdict.FAIL


def test_the_issue_9_cases_pass_a_strict_server(local_stack: LocalStack, strict_server: ServedApp) -> None:
    target = Target(strict_server.url + "/mcp", local_stack.issuer_url, local_stack.admin_secret, strict=True)
    verdicts = _issue_9_verdicts(target)
    judged = {name: verdict for name, (verdict, _) in verdicts.items() if name not in RAW_JSON_CASES}
    assert set(judged.values()) == {Verdict.PASS}, verdicts
    assert verdicts["cross-tenant-session"][1] == "refused with 404 " + (
        "[globex/alice's token (other sub, same preferred_username) on acme/alice's session]"
    )


def test_the_raw_json_cases_catch_a_careless_server_and_pass_a_strict_one(
    local_stack: LocalStack, careless_server: ServedApp, strict_server: ServedApp
) -> None:
    careless = _issue_9_verdicts(
        Target(careless_server.url + "/mcp", local_stack.issuer_url, local_stack.admin_secret, strict=True)
    )
    # Python's json keeps the last duplicate: alg none, then the real alg, reads as the real one.
    assert careless["duplicate-header-alg"][0] is Verdict.FAIL
    assert careless["duplicate-claim-sub"][0] is Verdict.FAIL
    assert careless["exp-beyond-double"][0] is Verdict.FAIL  # OverflowError: a 500
    strict = _issue_9_verdicts(
        Target(strict_server.url + "/mcp", local_stack.issuer_url, local_stack.admin_secret, strict=True)
    )
    assert {strict[name][0] for name in RAW_JSON_CASES} == {Verdict.PASS}, strict


def test_the_projects_own_server_passes_the_issue_9_cases_strictly(local_stack: LocalStack) -> None:
    target = Target(local_stack.server_url, local_stack.issuer_url, local_stack.admin_secret, strict=True)
    verdicts = _issue_9_verdicts(target)
    assert {name: verdict for name, (verdict, _) in verdicts.items() if verdict is not Verdict.PASS} == {}


def test_refusing_the_valid_token_fails_and_says_why(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--admin-secret", local_stack.admin_secret, "--audience", "http://127.0.0.1:9/elsewhere/mcp",
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
        "--issuer-admin", local_stack.issuer_url, "--admin-secret", local_stack.admin_secret,
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
            "--admin-secret", local_stack.admin_secret, "--format", "json",
            ]  # fmt: skip
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == 0
    assert document["strict"] is False
    assert document["summary"]["pass"] == len(CASES)
    assert [result["name"] for result in document["results"]] == [case.name for case in CASES]
    control = document["results"][0]
    observed = (control["expected_status"], control["observed_status"], control["verdict"])
    assert observed == ("2xx", 200, "pass")
    sources = {result["name"]: (result["source"], result["requirement"]) for result in document["results"]}
    assert sources == {case.name: (case.source, case.requirement.value) for case in CASES}
    assert sources["iat-in-future"][1] == "strict" and "RFC 7519 §4.1.6" in sources["iat-in-future"][0]


def test_cli_table_report(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--admin-secret", local_stack.admin_secret]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"CONFORMANT: {len(CASES)} cases ({len(CASES)} pass)" in out
    assert "profile:  standard" in out
    for case in CASES:
        assert case.name in out


def test_cli_reads_the_admin_secret_from_the_environment(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_IDFWD_ADMIN_SECRET", local_stack.admin_secret)
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            *_only("alg-none")]  # fmt: skip
    assert main(argv) == 0
    assert "CONFORMANT: 2 cases (2 pass)" in capsys.readouterr().out


def test_wrong_admin_secret_is_a_setup_error(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConformanceSetupError):
        run_battery(Target(local_stack.server_url, local_stack.issuer_url, "not-the-secret"))
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--admin-secret", "not-the-secret"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "conformance:" in err and "invalid_token" in err and "not-the-secret" not in err


def test_an_unreachable_server_is_reported_as_unreachable(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ServerUnreachable, match="unreachable"):
        run_battery(Target("http://127.0.0.1:9/mcp", local_stack.issuer_url, local_stack.admin_secret))
    argv = ["conformance", "--server", "http://127.0.0.1:9/mcp", "--issuer-admin", local_stack.issuer_url,
            "--admin-secret", local_stack.admin_secret]  # fmt: skip
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err
        == "conformance: the MCP server at http://127.0.0.1:9/mcp is unreachable (ConnectError)\n"
    )


def test_a_report_into_a_missing_directory_is_one_line(
    local_stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "missing" / "report.json"
    argv = ["conformance", "--server", local_stack.server_url, "--issuer-admin", local_stack.issuer_url,
            "--admin-secret", local_stack.admin_secret, "--output", str(output),
            *_only("alg-none")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"conformance: cannot write the report to {output}") and err.count("\n") == 1


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
        ('Bearer realm="a", Basic realm="b"', "Bearer", {"realm": "a"}),
    ],
)  # fmt: skip
def test_parse_challenge(value: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(value)
    assert challenge is not None
    assert (challenge.scheme, challenge.params, challenge.token68, challenge.malformed) == (
        scheme,
        params,
        None,
        None,
    )


@pytest.mark.parametrize("value", ["Bearer abc==", "Bearer abc==, Basic realm=x", "Bearer a.b-c_d~e+f/g"])
def test_parse_challenge_reads_a_token68_as_one(value: str) -> None:
    challenge = parse_challenge(value)
    assert challenge is not None
    assert (challenge.params, challenge.malformed) == ({}, None)
    assert challenge.token68 == value.split(" ")[1].rstrip(",")


# A peer's challenge with unescaped quotes inside error_description (RFC 6750 §3 forbids them).
UNESCAPED = ('Bearer error="invalid_token", error_description="the "kid" is unknown", '
             'resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp"')  # fmt: skip


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (UNESCAPED, "unexpected 'k' after the value of error_description"),
        ('Bearer error="invalid_token', "the quoted value of error is not closed"),
        ("Bearer error=invalid_token, error=invalid_request", "parameter error appears twice"),
    ],
)
def test_parse_challenge_says_why_a_challenge_is_malformed(value: str, reason: str) -> None:
    challenge = parse_challenge(value)
    assert challenge is not None and challenge.malformed is not None
    assert reason in challenge.malformed


def test_a_malformed_challenge_still_yields_the_parameters_it_carries() -> None:
    challenge = parse_challenge(UNESCAPED)
    assert challenge is not None
    assert challenge.params == {
        "error": "invalid_token",
        "error_description": 'the "kid" is unknown',
        "resource_metadata": "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp",
    }


def test_a_malformed_challenge_warns_as_malformed_not_as_missing_metadata() -> None:
    verdict, detail = judge(BY_NAME["alg-none"], Observed(401, parse_challenge(UNESCAPED), UNESCAPED), [],
                            strict=False)  # fmt: skip
    assert verdict is Verdict.WARN
    assert "malformed WWW-Authenticate challenge" in detail
    assert "resource_metadata" not in detail and "invalid_token" not in detail


@pytest.mark.parametrize("name", ["iat-in-future", "oversized-token", "long-lifetime", "duplicate-claim-sub"])
def test_accepting_what_only_the_strict_profile_refuses_warns_unless_strict(name: str) -> None:
    accepted = Observed(200, None, None)
    verdict, detail = judge(BY_NAME[name], accepted, [], strict=False)
    assert verdict is Verdict.WARN
    assert detail.startswith("accepted: only the strict profile (--strict) refuses this")
    assert BY_NAME[name].source in detail
    assert judge(BY_NAME[name], accepted, [], strict=True)[0] is Verdict.FAIL


@pytest.mark.parametrize("name", ["alg-none", "expired", "huge-nbf", "cross-tenant-session"])
def test_accepting_what_an_rfc_or_the_mcp_spec_refuses_always_fails(name: str) -> None:
    verdict, detail = judge(BY_NAME[name], Observed(200, None, None), [], strict=False)
    assert (verdict, detail) == (Verdict.FAIL, "ACCEPTED a token it must refuse")


def test_a_crash_fails_even_where_only_the_strict_profile_asks_for_a_refusal() -> None:
    verdict, detail = judge(BY_NAME["huge-exp"], Observed(500, None, None), [], strict=False)
    assert (verdict, detail) == (Verdict.FAIL, "server error 500 instead of a 401 refusal")


def test_the_docs_list_every_case_with_its_source() -> None:
    harness = (Path(__file__).parents[2] / "docs" / "harness.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in harness.splitlines() if line.startswith("| `")}
    for case in CASES:
        assert case.name in rows, case.name
        assert case.source in rows[case.name], case.name
        assert ("strict" if case.requirement is Requirement.STRICT else "must") in rows[case.name]


def test_parse_challenge_of_nothing() -> None:
    assert parse_challenge(None) is None
    assert parse_challenge("   ") is None

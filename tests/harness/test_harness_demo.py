import re
import signal
import subprocess
import sys

DEMO = [sys.executable, "-m", "harness", "demo"]


def test_demo_runs_end_to_end_and_reports_every_step() -> None:
    completed = subprocess.run(DEMO, capture_output=True, text=True, timeout=60)
    out = completed.stdout
    assert completed.returncode == 0, out + completed.stderr
    assert "Traceback" not in completed.stderr
    assert "DEMO PASSED: all 7 steps behaved as expected" in out
    for number in range(1, 8):
        assert f"Step {number}:" in out
    assert " FAIL" not in out
    # Each user is seen as themselves, and only their own notes.
    assert re.search("sub=[0-9a-f]{32} email=alice@example.com tenant=acme", out)
    assert re.search("sub=[0-9a-f]{32} email=bob@example.com tenant=acme", out)
    assert "notes=['alice: renew the passport']" in out
    assert "notes=['bob: call the bank']" in out
    # The failures that matter, each the named error or the server's refusal.
    assert "MCPIdentityRefreshError" in out
    assert "MCPMissingUserError" in out
    assert "MCPNoRefreshTokenError" in out
    assert "401 invalid_token (bad signature)" in out
    assert "401 invalid_token (wrong audience)" in out
    # An MCP SDK OAuth client signs carol in (auto-login) and the server sees carol.
    assert "carol (SDK OAuth client)" in out
    assert re.search(r"sub=[0-9a-f]{32} user=carol tenant=acme", out)
    # The three forwarding modes, each with the calls it made and alice as the server saw her.
    for mode in ("idp_token", "token_exchange", "id_jag"):
        assert re.search(rf"alice, {mode}, first call .* sub=[0-9a-f]{{32}} user=alice", out)
        assert re.search(rf"alice, {mode}, warm call +mcp(-id-jag)? POST /mcp +sub=", out)
    assert "idp POST /inner/api/mcp/issue-token" in out
    assert "idp POST /token token-exchange->access_token" in out
    assert "idp POST /token token-exchange->id-jag" in out
    assert "mcp-id-jag POST /token jwt-bearer" in out
    # Never a token in the report.
    assert "eyJ" not in out + completed.stderr


def test_demo_stops_cleanly_on_ctrl_c() -> None:
    with subprocess.Popen(DEMO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Step 1:"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted" in err
    assert "Traceback" not in err

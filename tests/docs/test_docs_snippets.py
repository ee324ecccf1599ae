"""Every snippet in README.md and docs/*.md runs as pasted; docs/README.md states the conventions.

- ```python blocks run as their own file in an empty directory: with `python`, or with `python -m
  pytest` when they define `test_` functions. A ```text block introduced by a line ending in
  "prints:" right after one is its exact output.
- ```bash blocks right after `<!-- docs-test: stack -->` run in bash against a stack started here
  (as `mcp-idfwd up` makes it), given as ISSUER, SERVER, SECRET and ADMIN_SECRET.
- In every other shell block, each `mcp-idfwd ...` command line is parsed by the real parser.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.stack import LocalStack

REPO_DIR = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO_DIR / "README.md", *sorted((REPO_DIR / "docs").glob("*.md"))]
STACK_MARKER = "<!-- docs-test: stack -->"
SHELL_LANGUAGES = {"bash", "sh", "console"}
KNOWN_LANGUAGES = {"python", "text", *SHELL_LANGUAGES}
SNIPPET_TIMEOUT = 180

_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language, its text, and what introduces it."""

    path: Path
    line: int
    language: str
    text: str
    lead: str  # the last non-blank line before the opening fence
    output: str | None = None  # for a python block: the text block it says it prints

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO_DIR)}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    lead, index = "", 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            if lines[index].strip():
                lead = lines[index].strip()
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].rstrip() == "```")
        text = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(path, index + 1, fence.group(1), text, lead))
        lead, index = "", end + 1
    # A python block's output: the next block, when it is text introduced by "...prints:".
    for position, block in enumerate(found[:-1]):
        following = found[position + 1]
        if block.language == "python" and following.language == "text" and following.lead.endswith("prints:"):
            found[position] = Block(block.path, block.line, "python", block.text, block.lead, following.text)
    return found


ALL_BLOCKS = [block for path in DOCUMENTS for block in _blocks(path)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]
STACK_BLOCKS = [block for block in ALL_BLOCKS if block.language == "bash" and block.lead == STACK_MARKER]
SHELL_BLOCKS = [
    block for block in ALL_BLOCKS if block.language in SHELL_LANGUAGES and block.lead != STACK_MARKER
]


def _ids(blocks: list[Block]) -> list[str]:
    return [block.name for block in blocks]


def _environment(**extra: str) -> dict[str, str]:
    """This interpreter's `mcp-idfwd` first on PATH and this checkout first on PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_IDFWD_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH")]))
    return {**env, **extra}


def _failure(what: str, completed: subprocess.CompletedProcess[str]) -> str:
    streams = f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}"
    return f"{what} exited {completed.returncode}\n{streams}"


def test_the_documents_have_snippets_of_every_kind() -> None:
    # A parser that finds nothing would make every test below pass vacuously.
    readme = [block for block in PYTHON_BLOCKS if block.path.name == "README.md"]
    assert len(readme) == 3, _ids(readme)
    assert len(PYTHON_BLOCKS) >= 8 and len(STACK_BLOCKS) >= 3 and len(SHELL_BLOCKS) >= 5
    assert any(block.output for block in PYTHON_BLOCKS)
    assert sum(1 for block in SHELL_BLOCKS for _ in _cli_invocations(block.text)) >= 10


def test_every_block_names_a_language_the_tests_know() -> None:
    unknown = [
        f"{block.name} ({block.language or 'no language'})"
        for block in ALL_BLOCKS
        if block.language not in KNOWN_LANGUAGES
    ]
    assert not unknown, "mark these blocks python, text or bash: " + ", ".join(unknown)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_ids(PYTHON_BLOCKS))
def test_python_snippet_runs_as_pasted(block: Block, tmp_path: Path) -> None:
    is_test_module = re.search(r"^(async )?def test_", block.text, re.M) is not None
    script = tmp_path / ("test_snippet.py" if is_test_module else "snippet.py")
    script.write_text(block.text, encoding="utf-8")
    command = [sys.executable, script.name]
    if is_test_module:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    completed = subprocess.run(
        command, cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=SNIPPET_TIMEOUT
    )
    assert completed.returncode == 0, _failure(block.name, completed)
    if is_test_module:
        assert re.search(r"\b\d+ passed\b", completed.stdout), completed.stdout
        assert not re.search(r"\b(skipped|xfailed|deselected)\b", completed.stdout), completed.stdout
    if block.output is not None:
        assert completed.stdout == block.output


@pytest.fixture
def running_stack() -> Iterator[LocalStack]:
    """The stack `mcp-idfwd up` starts: issuer, MCP server, acme/alice and acme/bob signed in."""
    with LocalStack() as stack:
        for user in ("alice", "bob"):
            stack.create_user("acme", user, email=f"{user}@example.com", name=user.title())
        yield stack


@pytest.mark.parametrize("block", STACK_BLOCKS, ids=_ids(STACK_BLOCKS))
def test_stack_block_runs_against_a_stack(block: Block, running_stack: LocalStack, tmp_path: Path) -> None:
    # Fixed ports may appear only as `${VAR:-default}` fallbacks; the test's stack has others.
    without_defaults = re.sub(r"\$\{\w+:-[^}]*\}", "", block.text)
    assert not re.search(r"127\.0\.0\.1:9[01]00", without_defaults), "use $ISSUER and $SERVER"
    env = _environment(
        ISSUER=running_stack.issuer_url,
        SERVER=running_stack.server_url,
        SECRET=running_stack.secret,
        ADMIN_SECRET=running_stack.admin_secret,
    )
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT,
    )
    assert completed.returncode == 0, _failure(block.name, completed)


def _logical_lines(text: str) -> Iterator[str]:
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        yield line.strip().removeprefix("$ ")


def _cli_invocations(text: str) -> Iterator[tuple[dict[str, str], list[str]]]:
    """Each `mcp-idfwd` (or `python -m harness`) command in a shell block, with the variables the
    block has exported by then and the ones set on the command itself."""
    exported: dict[str, str] = {}
    for line in _logical_lines(text):
        if "mcp-idfwd" not in line and "-m harness" not in line and not line.startswith("export "):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        segment: list[str] = []
        for word in [*lexer, ";"]:
            if word not in {";", "&&", "||", "|", "&"}:
                segment.append(word)
                continue
            assignments = {}
            while segment and re.fullmatch(r"[A-Za-z_]\w*=.*", segment[0]):
                name, _, value = segment.pop(0).partition("=")
                assignments[name] = value
            if segment[:1] == ["export"]:
                exported.update(word.partition("=")[::2] for word in segment[1:] if "=" in word)
            elif segment[:1] == ["mcp-idfwd"]:
                yield {**exported, **assignments}, segment[1:]
            elif segment[1:3] == ["-m", "harness"] and segment[0].startswith("python"):
                yield {**exported, **assignments}, segment[3:]
            segment = []


def test_the_command_line_reader_sees_exports_assignments_and_continuations() -> None:
    text = (
        "export MCP_IDFWD_ADMIN_SECRET=x   # or pass --admin-secret\n"
        "A=1 mcp-idfwd up --db=a.db \\\n  --alg ES256 && python -m harness demo | head\n"
        "curl -s http://example.test  # mcp-idfwd in a comment is no command\n"
    )
    assert list(_cli_invocations(text)) == [
        ({"MCP_IDFWD_ADMIN_SECRET": "x", "A": "1"}, ["up", "--db=a.db", "--alg", "ES256"]),
        ({"MCP_IDFWD_ADMIN_SECRET": "x"}, ["demo"]),
    ]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=_ids(SHELL_BLOCKS))
def test_shell_block_command_lines_parse(
    block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in os.environ if name.startswith("MCP_IDFWD_")]:
        monkeypatch.delenv(name)
    for env, argv in _cli_invocations(block.text):
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            try:
                build_parser().parse_args(argv)  # defaults read the environment when it is built
            except SystemExit as exit_:
                error = capsys.readouterr().err
                assert exit_.code == 0, f"{block.name}: mcp-idfwd {shlex.join(argv)}: {error}"


def test_a_wrong_flag_in_a_shell_block_fails() -> None:
    with pytest.raises(SystemExit):
        for _env, argv in _cli_invocations("mcp-idfwd up --issuer-prot 9000\n"):
            build_parser().parse_args(argv)


def test_the_readme_stays_a_pitch_with_the_reference_in_docs() -> None:
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    # Every docs/ file is reachable from the index.
    index = (REPO_DIR / "docs" / "README.md").read_text(encoding="utf-8")
    missing = [
        page.name
        for page in (REPO_DIR / "docs").glob("*.md")
        if page.name != "README.md" and f"({page.name})" not in index
    ]
    assert missing == []

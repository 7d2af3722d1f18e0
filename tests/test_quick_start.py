"""The README's quick start, run command for command from the README's own text, so the two cannot drift.

The block between the quick-start marker and its closing fence holds `python ...` commands, each followed by
the line it is expected to print ('# → ...', with '…' where a number depends on the machine). The commands
run in a scratch folder that mirrors the repository, with data/ pointing at CCP_DATA, as a newcomer's clone
with the dataset in data/ would run them.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from training_runs import script_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- quick-start -->"


def quick_start_steps(readme: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) in the order of the README's quick-start block."""
    block = readme.split(MARKER, 1)[1].split("```", 2)[1]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("python "):
            steps.append((line, []))
        elif line.startswith("# → ") and steps:
            steps[-1][1].append(line.removeprefix("# → "))
    return steps


def printed_as_expected(output: str, expected: str) -> bool:
    """Whether output holds the expected line, each '…' standing for any text within that line."""
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.search(pattern, output) is not None


def test_the_readme_names_every_step_of_the_quick_start():
    steps = quick_start_steps((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    scripts = [shlex.split(command)[1] for command, _ in steps]
    assert scripts == ["preprocess.py", "train.py", "img_test.py", "img_test.py", "export.py", "img_test.py"]
    assert all(expected for _, expected in steps)


def test_the_quick_start_runs_as_written(tmp_path):
    data = os.environ.get("CCP_DATA")
    if not data:
        pytest.skip("set CCP_DATA to the real CCP folder to run the README's quick start")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in {"data", "results", ".git"}:
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "data").mkdir()
    for entry in Path(data).iterdir():
        (tmp_path / "data" / entry.name).symlink_to(entry)
    for command, expected_lines in quick_start_steps((REPO_ROOT / "README.md").read_text(encoding="utf-8")):
        arguments = shlex.split(command)
        done = subprocess.run([sys.executable, *arguments[1:]], cwd=tmp_path, env=script_environment(),
                              capture_output=True, text=True, timeout=600)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}\n{output[-3000:]}"
        for expected in expected_lines:
            assert printed_as_expected(output, expected), f"{command}: expected '{expected}' in\n{output[-3000:]}"

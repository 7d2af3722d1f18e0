""".ci/run stops at once, with one line saying what to set, where the datasets the suite needs are missing."""

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_ci(tmp_path, **environment):
    """.ci/run with a `python` that only records that it was called: no install, lint or suite runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\ntouch "{tmp_path / "python-called"}"\nexit 1\n')
    (bin_dir / "python").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("CCP_DATA", "CCP_KAGGLE_SAMPLE")}
    env.update(environment, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    result = subprocess.run(["bash", str(REPO_ROOT / ".ci" / "run")], env=env, capture_output=True, text=True,
                            timeout=60)
    return result, (tmp_path / "python-called").exists()


@pytest.mark.parametrize("missing", ["CCP_DATA", "CCP_KAGGLE_SAMPLE"])
def test_ci_run_stops_before_any_work_when_a_dataset_folder_is_missing(tmp_path, missing):
    real = tmp_path / "ccp"
    real.mkdir()
    folders = {"CCP_DATA": str(real), "CCP_KAGGLE_SAMPLE": str(tmp_path / "nowhere")}
    if missing == "CCP_DATA":
        folders = {"CCP_DATA": str(tmp_path / "nowhere")}
    result, python_called = run_ci(tmp_path, **folders)
    assert result.returncode == 2 and not python_called
    assert result.stderr.startswith(f"error: {missing}={tmp_path / 'nowhere'} is not a folder: set CCP_DATA")
    assert result.stderr.count("\n") == 1 and "CCP_KAGGLE_SAMPLE to its Kaggle-layout sample" in result.stderr

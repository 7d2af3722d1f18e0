import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The scripts are plain top-level modules, imported the way a researcher runs them from the repo root.
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_ccp import write_ccp_layout, write_kaggle_layout  # noqa: E402


@pytest.fixture
def ccp_synthetic(tmp_path):
    """Six fake photos in the original CCP layout."""
    return write_ccp_layout(tmp_path / "ccp")


@pytest.fixture
def kaggle_synthetic(tmp_path):
    """Six fake photos in the Kaggle layout."""
    return write_kaggle_layout(tmp_path / "kaggle")


def _real_data_dir() -> Path:
    if not os.environ.get("CCP_DATA"):
        pytest.skip("set CCP_DATA to the real CCP folder (photos/, annotations/, label_list.mat) to run this test")
    path = Path(os.environ["CCP_DATA"])
    if not path.is_dir():
        pytest.fail(f"CCP_DATA={path} is not a folder")
    return path


@pytest.fixture(scope="session")
def real_ccp_dir():
    """The real 1004-image CCP folder named by CCP_DATA (CI sets it); skipped when unset."""
    return _real_data_dir()


@pytest.fixture(scope="session")
def kaggle_sample_dir():
    """The 24-image Kaggle-layout sample that lies beside the real data."""
    path = Path(os.environ.get("CCP_KAGGLE_SAMPLE", _real_data_dir().parent / "ccp-kaggle-sample"))
    if not path.is_dir():
        pytest.fail(f"Kaggle-layout sample {path} not found: set CCP_KAGGLE_SAMPLE")
    return path

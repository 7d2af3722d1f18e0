import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
# The scripts are plain top-level modules, imported the way a researcher runs them from the repo root.
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_ccp import write_ccp_layout, write_kaggle_layout  # noqa: E402
from training_runs import build_cache  # noqa: E402


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A 12-image synthetic cache at 32x32, built once per module of the training tests."""
    return build_cache(tmp_path_factory.mktemp("cache"))


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: a second thread gains nothing, and on a busy shared machine its spin-waiting costs
    seconds (test_img_test.py ran in half the time with one). ONNX Runtime sessions take as many threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def onnx_packages():
    """Skips the test where export's optional packages (requirements-export.txt) are not installed."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package)

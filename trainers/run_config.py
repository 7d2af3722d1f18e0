"""What a run was: every option, the model's constructor arguments, which cache and which code, written
as <out>/<model>_config.json when the run starts and kept in its checkpoints (`train.py --config FILE`
repeats it)."""

import hashlib
import json
import platform
import subprocess
from pathlib import Path

import torch
import torchvision

from helpers.atomic_files import atomic_write_text
from trainers.option_lookup import option_keywords
from trainers.options import TrainingOptions

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """`git describe --always --dirty` of the code that runs, or "unknown" outside a git checkout."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip() if described.returncode == 0 and described.stdout.strip() else "unknown"


def meta_digest(meta: dict) -> str:
    """SHA-256 of the cache's meta (classes, palette, size, ids, split): two caches that agree on it train alike."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def run_config(options: TrainingOptions, model_kwargs: dict, meta: dict) -> dict:
    return {
        "options": option_keywords(options),
        "model_kwargs": dict(model_kwargs),
        "cache_meta_sha256": meta_digest(meta),
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "code": code_version(),
        },
    }


def config_path(out: str | Path, model_name: str) -> Path:
    return Path(out) / f"{model_name}_config.json"


def write_run_config(config: dict) -> Path:
    options = config["options"]
    return atomic_write_text(config_path(options["out"], options["model"]), json.dumps(config, indent=1) + "\n")

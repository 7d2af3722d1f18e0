"""Weights into models: local state-dict files and torchvision downloads, each failure one clear line."""

import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

from helpers.errors import ClothVisionError, error_reason

OFFLINE_OPTIONS = "pass --no-pretrained to train from scratch, or --weights FILE to load a local state dict"
LISTED_KEYS = 3


def read_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict with torch's weights-only unpickler.

    Accepts a bare state dict, a ClothVision checkpoint ('state_dict' entry), a torchvision-references
    checkpoint ('model' entry) and keys prefixed with 'module.' by DistributedDataParallel.
    """
    path = Path(path)
    if not path.is_file():
        raise ClothVisionError(f"weights file {path} not found: pass the path of a saved state dict "
                               "to --weights, or use --no-pretrained")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise ClothVisionError(f"weights file {path} cannot be read as a weights-only torch file "
                               f"({error_reason(error)}): save it with torch.save(model.state_dict(), path)"
                               ) from None
    if isinstance(loaded, dict):
        for wrapper_key in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper_key), dict):
                loaded = loaded[wrapper_key]
                break
    is_state_dict = isinstance(loaded, dict) and loaded and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items())
    if not is_state_dict:
        raise ClothVisionError(f"weights file {path} holds no state dict (parameter names mapped to "
                               "tensors): save one with torch.save(model.state_dict(), path)")
    if all(key.startswith("module.") for key in loaded):
        return {key.removeprefix("module."): value for key, value in loaded.items()}
    return dict(loaded)


def download_state_dict(weights: WeightsEnum, description: str) -> dict[str, torch.Tensor]:
    """Fetch torchvision weights (cached under torch.hub.get_dir()); a failure names the offline options."""
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as error:
        file_name = weights.url.rsplit("/", 1)[-1]
        cache_folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise ClothVisionError(f"could not download the {description} weights {weights.url} "
                               f"({error_reason(error)}): {OFFLINE_OPTIONS} "
                               f"(or copy {file_name} into {cache_folder})") from None


def load_checked(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, target: str,
                 replaceable_keys: tuple[str, ...] = ()) -> None:
    """Load state_dict into module, refusing missing keys, unexpected keys and wrong shapes.

    A key in replaceable_keys whose shape differs keeps the module's fresh initialisation: that is how a
    classifier trained for another number of classes is swapped for ours. Missing BatchNorm
    num_batches_tracked counters are tolerated (older torchvision files lack them; they hold no weights).
    """
    expected = module.state_dict()
    kept = {key: value for key, value in state_dict.items()
            if not (key in replaceable_keys and key in expected and value.shape != expected[key].shape)}
    replaced = state_dict.keys() - kept.keys()
    missing = [key for key in expected
               if key not in kept and key not in replaced and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in kept if key not in expected]
    wrong_shapes = [f"{key} {list(value.shape)} (model {list(expected[key].shape)})"
                    for key, value in kept.items() if key in expected and value.shape != expected[key].shape]
    problems = [f"{label} {_some(keys)}"
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("wrong shapes", wrong_shapes))
                if keys]
    if problems:
        raise ClothVisionError(f"{source} does not match {target}: {'; '.join(problems)}: "
                               f"pass a state dict saved from {target}")
    module.load_state_dict(kept, strict=False)


def load_weights_file(model: nn.Module, path: str | Path, target: str) -> None:
    """Load a whole-model state dict file into model."""
    load_checked(model, read_state_dict_file(path), f"weights file {path}", target)


def _some(keys: list[str]) -> str:
    listed = ", ".join(keys[:LISTED_KEYS])
    return f"{listed} (+{len(keys) - LISTED_KEYS} more)" if len(keys) > LISTED_KEYS else listed

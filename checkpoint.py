"""Self-contained checkpoints: saved atomically, loaded only through torch's weights_only unpickler."""

import pickle
from pathlib import Path

import torch

from atomic_files import atomic_write
from errors import ClothVisionError

CHECKPOINT_FORMAT = "clothvision-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write checkpoint (plain containers, numbers, strings and tensors only) to path atomically."""
    stamped = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **checkpoint}
    return atomic_write(path, lambda temporary: torch.save(stamped, temporary))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint without ever running code stored in it; every failure is one clear line."""
    path = Path(path)
    if not path.is_file():
        raise ClothVisionError(f"checkpoint {path} not found: train one with 'python train.py --model NAME' "
                               "or pass the path of an existing .pt file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClothVisionError(f"checkpoint {path} was refused: it holds objects that only an unsafe unpickler "
                               f"could load ({first_line}); use a checkpoint written by train.py") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise ClothVisionError(f"checkpoint {path} cannot be read ({type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else 'corrupt file'}); "
                               "it is truncated or not a torch file: train again or pass another file") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ClothVisionError(f"checkpoint {path} is not a ClothVision checkpoint: pass a .pt file written by train.py")
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise ClothVisionError(f"checkpoint {path} has format version {checkpoint.get('format_version')}, this code "
                               f"reads version {CHECKPOINT_VERSION}: retrain it with this version of train.py")
    return checkpoint


def build_model_from_checkpoint(checkpoint: dict) -> torch.nn.Module:
    """Rebuild the network from the checkpoint alone (no cache, no download) and load its weights."""
    from models import get_model

    model = get_model(checkpoint["model_name"], len(checkpoint["class_names"]), pretrained="none",
                      **checkpoint["model_kwargs"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()

"""Self-contained checkpoints: saved atomically, loaded only through torch's weights_only unpickler."""

import hashlib
import pickle
import re
import warnings
from pathlib import Path

import torch

from helpers.atomic_files import atomic_write
from helpers.errors import ClothVisionError

CHECKPOINT_FORMAT = "clothvision-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write checkpoint (plain containers, numbers, strings and tensors only) to path atomically."""
    stamped = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **checkpoint}
    return atomic_write(path, lambda temporary: torch.save(stamped, temporary))


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes: the same weights give the same digest
    wherever they are stored, so a report can say which weights it is about."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _first_sentence(text: str) -> str:
    return re.split(r"\.\s|\n", text.strip(), maxsplit=1)[0].strip().rstrip(".")


def _unpickler_complaint(error: pickle.UnpicklingError) -> str:
    """The weights-only unpickler's own words (e.g. 'Trying to load unsupported GLOBAL posix.system ...'),
    without the generic advice that torch wraps around them."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    else:  # the first paragraph is torch's advice on weights_only; the reason follows it
        paragraphs = [paragraph for paragraph in re.split(r"\n\s*\n", text) if paragraph.strip()]
        text = paragraphs[1] if len(paragraphs) > 1 else text
    return _first_sentence(text) or type(error).__name__


def _unreadable(path: Path, reason: str) -> ClothVisionError:
    return ClothVisionError(f"checkpoint {path} cannot be read ({reason}); it is truncated or not a torch "
                            "file: train again or pass another file")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """Load a checkpoint without ever running code stored in it; every failure is one clear line. mmap maps
    the tensors instead of reading them, for callers that only look at the plain entries."""
    path = Path(path)
    if not path.is_file():
        raise ClothVisionError(f"checkpoint {path} not found: train one with 'python train.py --model NAME' "
                               "or pass the path of an existing .pt file")
    try:
        with warnings.catch_warnings():
            # Foreign pickles make torch warn about their protocol; the error below says all there is to say.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        complaint = _unpickler_complaint(error)
        if complaint.startswith("Unsupported operand"):  # bytes that are no pickle at all (a photo, ...)
            raise _unreadable(path, complaint) from None
        raise ClothVisionError(f"checkpoint {path} was refused: it holds objects that only an unsafe "
                               f"unpickler could load ({complaint}); use a checkpoint written by train.py"
                               ) from None
    # On foreign bytes (a text file, say) the weights-only unpickler also fails with KeyError,
    # IndexError, struct.error, ...: none of them may escape as a traceback.
    except Exception as error:
        raise _unreadable(path, f"{type(error).__name__}: {_first_sentence(str(error)) or 'corrupt file'}"
                          ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ClothVisionError(f"checkpoint {path} is not a ClothVision checkpoint: "
                               "pass a .pt file written by train.py")
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise ClothVisionError(f"checkpoint {path} has format version {checkpoint.get('format_version')}, "
                               f"this code reads version {CHECKPOINT_VERSION}: "
                               "retrain it with this version of train.py")
    return checkpoint

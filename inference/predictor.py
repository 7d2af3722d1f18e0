"""A trained network rebuilt from its checkpoint alone, predicting class maps at each photo's own size.

The checkpoint is a .pt file written by train.py (run in PyTorch) or an .onnx file written by export.py
(run in ONNX Runtime); the photo is read, resized, normalised and its scores upsampled the same way for both.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dataset import normalisation_scale_and_shift
from evaluation.test_time_augmentation import DEFAULT_TTA, augmented_logits, check_tta
from evaluation.upsampling import upsampled_argmax
from inference.backends import load_onnx_checkpoint, load_torch_checkpoint
from inference.onnx_format import is_onnx_path
from label_decoder import LabelDecoder


class SegmentationPredictor:
    """Load a ClothVision checkpoint (.pt or .onnx) once, then predict any number of RGB images with it.

    device and precision choose how a .pt checkpoint runs; an .onnx one runs in ONNX Runtime on the CPU
    in float32 and accepts only 'auto' (or 'cpu' and 'fp32') for them. tta 'flip' averages the scores of
    each photo with those of its mirror image (evaluation/test_time_augmentation.py), in either back end.
    """

    def __init__(self, checkpoint_path: str | Path, device: str = "auto", precision: str = "auto",
                 tta: str = DEFAULT_TTA):
        self.tta = check_tta(tta)
        self.checkpoint_path = Path(checkpoint_path)
        load = load_onnx_checkpoint if is_onnx_path(self.checkpoint_path) else load_torch_checkpoint
        checkpoint, self.backend = load(self.checkpoint_path, device, precision)
        # Also checks that class names and colours match one to one, naming the checkpoint if not.
        self.decoder = LabelDecoder(checkpoint["class_names"], checkpoint["palette"],
                                    source=f"checkpoint {self.checkpoint_path}")
        self.model_name = checkpoint["model_name"]
        # The image ids of each split the checkpoint was trained with, to pick test photos by position.
        self.split_ids = checkpoint.get("split_ids", {})
        # train.py's arguments (its cache folder among them); an .onnx file does not carry them.
        self.training_arguments = checkpoint.get("args", {})
        self.image_size = tuple(int(side) for side in checkpoint["image_size"])
        # The training loader's formula, so a photo is normalised exactly as the training images were.
        self.scale, self.shift = normalisation_scale_and_shift(checkpoint, self.backend.device)

    @torch.inference_mode()
    def predict(self, image: Image.Image) -> np.ndarray:
        """HxW uint8 class indices at image's own size, for an RGB PIL image of any size."""
        height, width = self.image_size
        # The model always sees the training size, so its memory does not grow with the photo;
        # PIL's bilinear resize averages over the whole footprint when shrinking, like preprocess.py.
        resized = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))
        pixels = torch.from_numpy(resized.copy()).to(self.backend.device).permute(2, 0, 1)
        batch = torch.addcmul(self.shift, pixels.float(), self.scale).unsqueeze(0)
        logits = augmented_logits(self.backend.logits, batch, self.tta)
        return upsampled_argmax(logits[0], image.height, image.width)

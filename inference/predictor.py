"""A trained network rebuilt from its checkpoint alone, predicting class maps at each photo's own size.

The checkpoint is a .pt file written by train.py (run in PyTorch) or an .onnx file written by export.py
(run in ONNX Runtime); the photo is read, resized, normalised and its scores upsampled the same way for both.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dataset import normalisation_scale_and_shift
from inference.backends import load_onnx_checkpoint, load_torch_checkpoint
from inference.onnx_format import is_onnx_path
from label_decoder import LabelDecoder

# Upsampled logits are produced a band of rows at a time, at most this many values per band
# (128 MiB in float32), so a 6000x4000 photo costs a bounded amount of memory, not 59x24M floats.
MAX_BAND_VALUES = 2**25


class SegmentationPredictor:
    """Load a ClothVision checkpoint (.pt or .onnx) once, then predict any number of RGB images with it.

    device and precision choose how a .pt checkpoint runs; an .onnx one runs in ONNX Runtime on the CPU
    in float32 and accepts only 'auto' (or 'cpu' and 'fp32') for them.
    """

    def __init__(self, checkpoint_path: str | Path, device: str = "auto", precision: str = "auto"):
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
        return upsampled_argmax(self.backend.logits(batch)[0], image.height, image.width)


def _source_indices(output_size: int, input_size: int, device: torch.device):
    """For each output row (or column): the input rows it lies between (before, after) and the weight
    of the one after, exactly as F.interpolate computes them for bilinear, align_corners=False."""
    scale = input_size / output_size
    # Computed on the CPU and then moved: MPS has no float64.
    source = ((torch.arange(output_size, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    before = source.floor().long().clamp(max=input_size - 1)
    after = (before + 1).clamp(max=input_size - 1)
    return before.to(device), after.to(device), (source - before).float().to(device)


def upsampled_argmax(logits: torch.Tensor, height: int, width: int,
                     max_band_values: int = MAX_BAND_VALUES) -> np.ndarray:
    """argmax over classes of the logits (C x h x w) resized bilinearly to height x width, as uint8.

    Equal to F.interpolate(logits, (height, width), mode="bilinear").argmax(0) without building the
    C x height x width tensor. Interpolating scores before the argmax gives smooth class boundaries,
    where resizing the argmax map would give blocks of the model's pixel size on large photos.
    A blend of score vectors that all rank class k first ranks k first too, so an output pixel whose
    four source pixels agree takes their class directly; only pixels along class boundaries are
    blended, a band of rows at a time so that even a map that is all boundary stays within memory.
    """
    classes = logits.shape[0]
    coarse = logits.argmax(0).to(torch.uint8)
    # One pixel's class scores side by side in memory: boundary pixels gather whole score vectors.
    scores = logits.permute(1, 2, 0).contiguous()
    top_row, bottom_row, bottom_weight = _source_indices(height, logits.shape[1], logits.device)
    left_column, right_column, right_weight = _source_indices(width, logits.shape[2], logits.device)
    rows_per_band = max(1, max_band_values // (classes * width))
    prediction = np.empty((height, width), dtype=np.uint8)
    for first_row in range(0, height, rows_per_band):
        band = slice(first_row, min(first_row + rows_per_band, height))
        above, below = coarse[top_row[band]], coarse[bottom_row[band]]
        corners = (above[:, left_column], above[:, right_column],
                   below[:, left_column], below[:, right_column])
        band_prediction = corners[0].clone()
        boundary = (corners[0] != corners[1]) | (corners[0] != corners[2]) | (corners[0] != corners[3])
        band_rows, columns = boundary.nonzero(as_tuple=True)
        if band_rows.numel():
            rows, left, right = band_rows + first_row, left_column[columns], right_column[columns]
            top_scores = torch.lerp(scores[top_row[rows], left], scores[top_row[rows], right],
                                    right_weight[columns, None])
            bottom_scores = torch.lerp(scores[bottom_row[rows], left], scores[bottom_row[rows], right],
                                       right_weight[columns, None])
            blended = torch.lerp(top_scores, bottom_scores, bottom_weight[rows, None])
            band_prediction[band_rows, columns] = blended.argmax(1).to(torch.uint8)
        prediction[band] = band_prediction.cpu().numpy()
    return prediction

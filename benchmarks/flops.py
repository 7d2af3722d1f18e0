"""Model FLOPs per image, for the model FLOPs utilisation (MFU) against an accelerator's peak."""

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# NVIDIA H200 SXM datasheet: 989 TFLOP/s dense bf16 on the tensor cores (the 1979 quoted beside it
# assumes 2:4 sparsity, which these models do not use). A large bf16 matrix product reaches about 790
# on such a card, so an MFU against the datasheet peak is a conservative figure.
H200_BF16_DENSE_PEAK_FLOPS = 989e12

# A backward pass costs about twice its forward (gradients of the inputs and of the weights).
FORWARD_AND_BACKWARD_PER_FORWARD = 3


def forward_flops_per_image(model: nn.Module, image_size: tuple[int, int]) -> int:
    """FLOPs (2 per multiply-add) of one image's forward pass, counted on a weightless copy of the model.

    The copy lives on the meta device, so counting costs no arithmetic and no memory on any machine;
    eval mode lets batch normalisation accept a batch of one.
    """
    counting_copy = copy.deepcopy(model).to("meta").eval()
    images = torch.empty((1, 3, *image_size), device="meta")
    with FlopCounterMode(display=False) as counter:
        counting_copy(images)
    return counter.get_total_flops()

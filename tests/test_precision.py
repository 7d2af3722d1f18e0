"""One precision decision: bf16 autocast + channels_last where the hardware has bf16, float32 elsewhere."""

import pytest
import torch
import torch.nn.functional as F

from helpers import devices
from helpers.devices import Precision, resolve_precision
from helpers.errors import ClothVisionError
from models import get_model


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_cpus_bf16_instructions(monkeypatch, native, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", "cpu").name == expected
    # Asked for explicitly, either works on any CPU (bf16 is emulated where it is not native).
    assert resolve_precision("bf16", "cpu").name == "bf16" and resolve_precision("fp32", "cpu").name == "fp32"


def test_auto_is_bf16_on_cuda_and_float32_on_mps():
    assert resolve_precision("auto", "cuda") == Precision("bf16", "cuda")
    assert resolve_precision("auto", "mps") == Precision("fp32", "mps")


def test_unknown_precision_lists_the_choices():
    with pytest.raises(ClothVisionError, match="unknown precision 'half': use one of auto, bf16, fp32"):
        resolve_precision("half", "cpu")


def test_native_bf16_detection_asks_torchs_own_cpu_probes(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert devices.cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not devices.cpu_has_native_bf16()


def test_bf16_runs_the_forward_pass_in_bf16_and_channels_last():
    bf16, fp32 = Precision("bf16", "cpu"), Precision("fp32", "cpu")
    images = bf16.place(torch.randn(2, 3, 8, 8), torch.device("cpu"))
    assert images.is_contiguous(memory_format=torch.channels_last)
    convolution = torch.nn.Conv2d(3, 4, 3)
    with bf16.autocast():
        assert convolution(images).dtype == torch.bfloat16
    with fp32.autocast():
        assert convolution(images).dtype == torch.float32
    assert fp32.place(torch.randn(2, 3, 8, 8), torch.device("cpu")).is_contiguous()


def train_losses(precision: Precision, steps: int = 6) -> list[float]:
    """A few Adam steps of a tiny U-net on one fixed batch, from the same seed."""
    torch.manual_seed(0)
    model = precision.place(get_model("unet", 5, base_width=4), torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 32, 32, generator=generator)
    labels = (images[:, 0] > 0).long() + 2 * (images[:, 1] > 0).long()
    losses = []
    for _ in range(steps):
        with precision.autocast():
            logits = model(precision.place(images, torch.device("cpu")))
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_bf16_training_follows_float32_training_closely():
    full, half = train_losses(Precision("fp32", "cpu")), train_losses(Precision("bf16", "cpu"))
    assert half == pytest.approx(full, rel=0.03)
    assert full[-1] < full[0] and half[-1] < half[0]

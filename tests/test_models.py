import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

from helpers.errors import ClothVisionError
from models import (
    FINE_TUNING_RATES,
    FROM_SCRATCH_RATES,
    MODEL_NAMES,
    MODEL_REGISTRY,
    LearningRates,
    build_model_from_checkpoint,
    count_parameters,
    default_learning_rates,
    get_model,
    model_kwargs_for,
)
from models.deeplabv3 import VARIANTS
from models.unet import UNet

NUM_CLASSES = 59
# A narrow U-net keeps its smoke test fast; the others have no width to choose.
SMOKE_KWARGS = {"unet": {"base_width": 8}}


def assert_same_tensors(loaded: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    assert loaded.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(loaded[key], value), key


def torchvision_deeplabv3_with_21_classes() -> torch.nn.Module:
    """The layout of torchvision's COCO-trained files: 21 classes and an auxiliary classifier."""
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)


def save_state_dict(path: Path, state_dict: dict) -> Path:
    torch.save(state_dict, path)
    return path


@pytest.fixture
def offline_torch_home(tmp_path, monkeypatch):
    """An empty torchvision weight cache and a network that always fails: (cache folder, attempted URLs)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    download_attempts = []

    def refuse_download(url, *args, **kwargs):
        download_attempts.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cache.mkdir(parents=True)
    return cache, download_attempts


def test_registry_lists_every_model_with_its_training_settings():
    assert MODEL_NAMES == ("unet", "mobilenetv3", "resnet50", "resnet101")
    assert [MODEL_REGISTRY[name].transfer_learning for name in MODEL_NAMES] == [False, True, True, True]
    assert all(MODEL_REGISTRY[name].description for name in MODEL_NAMES)


def test_learning_rates_follow_where_the_weights_come_from():
    scratch, fine_tuning = LearningRates(1e-3, 1.0), LearningRates(1e-4, 0.1)
    assert (scratch, fine_tuning) == (FROM_SCRATCH_RATES, FINE_TUNING_RATES)
    # The U-net has no pretrained weights: whatever is asked, it starts from scratch.
    assert default_learning_rates("unet", "imagenet") == default_learning_rates("unet", "none", "w.pt") == scratch
    for name in MODEL_NAMES[1:]:
        assert default_learning_rates(name, "none") == scratch
        assert default_learning_rates(name, "imagenet") == default_learning_rates(name, "coco") == fine_tuning
        assert default_learning_rates(name, "none", "backbone.pth") == fine_tuning


def batchnorm_momenta(model: torch.nn.Module) -> set[float]:
    return {module.momentum for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)}


def test_from_scratch_mobilenetv3_gets_the_usual_batchnorm_momentum_and_pretrained_weights_keep_theirs(tmp_path):
    scratch = get_model("mobilenetv3", 5)
    assert batchnorm_momenta(scratch) == {0.1}
    # torchvision's own MobileNetV3-Large: most of its BatchNorm layers follow their statistics slowly.
    assert 0.01 in batchnorm_momenta(deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5))
    weights_file = tmp_path / "mobilenetv3.pth"
    torch.save(scratch.state_dict(), weights_file)
    from_file = get_model("mobilenetv3", 5, weights_file=weights_file)
    momenta = [module.momentum for module in from_file.backbone.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert momenta.count(0.01) == 46 and momenta.count(0.1) == 0
    assert batchnorm_momenta(get_model("unet", 5, base_width=2)) == batchnorm_momenta(get_model("resnet50", 5)) == {0.1}


def test_unknown_model_or_pretrained_choice_lists_the_valid_ones():
    valid_names = "unet, mobilenetv3, resnet50, resnet101"
    with pytest.raises(ClothVisionError, match=f"unknown model 'vgg16': choose one of {valid_names}"):
        get_model("vgg16", NUM_CLASSES)
    with pytest.raises(ClothVisionError, match="choose one of none, imagenet, coco"):
        get_model("unet", NUM_CLASSES, pretrained="imagenet21k")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_one_step_on_a_tiny_batch(name):
    torch.manual_seed(0)
    model = get_model(name, NUM_CLASSES, **SMOKE_KWARGS.get(name, {})).train()
    # Batch 2: DeepLabV3's image-pooling branch applies BatchNorm to one value per channel and image.
    images = torch.randn(2, 3, 48, 32)
    targets = torch.randint(0, NUM_CLASSES, (2, 48, 32))
    logits = model(images)
    assert isinstance(logits, torch.Tensor) and logits.dtype == torch.float32
    assert logits.shape == (2, NUM_CLASSES, 48, 32)
    torch.nn.functional.cross_entropy(logits, targets).backward()
    gradients = [parameter.grad for parameter in model.parameters() if parameter.grad is not None]
    assert len(gradients) == len(list(model.parameters()))
    assert all(torch.isfinite(gradient).all() for gradient in gradients)
    assert any(gradient.abs().sum() > 0 for gradient in gradients)


@pytest.mark.parametrize("name", MODEL_NAMES[1:])
def test_deeplabv3_exposes_backbone_and_a_head_for_our_classes(name):
    model = get_model(name, NUM_CLASSES)
    assert model.aux_classifier is None
    assert model.classifier[4].out_channels == NUM_CLASSES
    assert count_parameters(model) == count_parameters(model.backbone) + count_parameters(model.classifier)


def test_unet_widths_follow_the_base_width():
    model = UNet(NUM_CLASSES, base_width=5)
    assert [block[0].out_channels for block in model.encoder] == [5, 10, 20, 40]
    assert model.bottleneck[0].out_channels == 80
    assert [block.upsample.out_channels for block in model.decoder] == [40, 20, 10, 5]
    assert model.classifier.in_channels == 5
    assert model.classifier.out_channels == NUM_CLASSES
    assert count_parameters(model) == count_parameters(get_model("unet", NUM_CLASSES, base_width=5))
    assert count_parameters(model) < count_parameters(UNet(NUM_CLASSES, base_width=6))


def test_unet_handles_sizes_not_divisible_by_sixteen_and_refuses_tiny_ones():
    model = get_model("unet", 7, base_width=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 29)).shape == (1, 7, 37, 29)
        assert model(torch.randn(1, 3, 16, 17)).shape == (1, 7, 16, 17)
        with pytest.raises(ClothVisionError, match="15×40 is too small.*at least 16×16"):
            model(torch.randn(1, 3, 15, 40))


def test_unet_stride2_stem_halves_the_full_size_stage_and_upsamples_its_logits():
    torch.manual_seed(0)
    full, halved = UNet(NUM_CLASSES, base_width=4), UNet(NUM_CLASSES, base_width=4, stem="stride2")
    assert halved.stem[0].stride == (2, 2) and halved.encoder[0][0].in_channels == 4
    images = torch.randn(1, 3, 64, 48)
    with torch.no_grad(), FlopCounterMode(display=False) as full_flops:
        full.eval()(images)
    half_size_logits = []
    halved.classifier.register_forward_hook(lambda module, inputs, output: half_size_logits.append(output))
    with torch.no_grad(), FlopCounterMode(display=False) as halved_flops:
        logits = halved.eval()(images)
    # Every stage of the encoder and decoder now runs at a quarter of the pixels.
    assert halved_flops.get_total_flops() < full_flops.get_total_flops() / 3
    assert half_size_logits[0].shape == (1, NUM_CLASSES, 32, 24)
    upsampled = torch.nn.functional.interpolate(half_size_logits[0], size=(64, 48), mode="bilinear")
    assert torch.equal(logits, upsampled)
    with torch.no_grad():
        assert halved(torch.randn(1, 3, 33, 47)).shape == (1, NUM_CLASSES, 33, 47)
        with pytest.raises(ClothVisionError, match="31×40 is too small.*at least 32×32"):
            halved(torch.randn(1, 3, 31, 40))
    with pytest.raises(ClothVisionError, match="unknown U-net stem 'half': choose one of full, stride2"):
        UNet(NUM_CLASSES, stem="half")


def test_deeplabv3_returns_torchvision_logits_and_loads_its_state_dicts():
    """A state dict of torchvision's own DeepLabV3 (the format of checkpoints written before the wrapping)
    loads key for key, and the wrapped model's tensor equals torchvision's {'out': ...}."""
    torch.manual_seed(0)
    original = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5, aux_loss=False)
    checkpoint = {"model_name": "mobilenetv3", "model_kwargs": {}, "class_names": list("abcde"),
                  "state_dict": original.state_dict()}
    wrapped = build_model_from_checkpoint(checkpoint)
    images = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert torch.equal(wrapped(images), original.eval()(images)["out"])
    assert wrapped.state_dict().keys() == original.state_dict().keys()


def test_deeplabv3_upsamples_in_float32_under_bf16_autocast():
    model = get_model("mobilenetv3", NUM_CLASSES).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 64, 48))
    assert logits.dtype == torch.float32 and logits.shape == (2, NUM_CLASSES, 64, 48)


@pytest.mark.parametrize("pretrained", ["imagenet", "coco"])
def test_a_failed_download_names_both_offline_options(offline_torch_home, pretrained):
    _, download_attempts = offline_torch_home
    with pytest.raises(ClothVisionError) as raised:
        get_model("mobilenetv3", NUM_CLASSES, pretrained=pretrained)
    message = str(raised.value)
    assert "\n" not in message
    assert "URLError" in message
    assert "--no-pretrained" in message
    assert "--weights FILE" in message
    assert download_attempts == [download_attempts[0]]
    assert download_attempts[0] in message


def test_imagenet_weights_from_the_torch_cache_fill_the_backbone(offline_torch_home):
    cache, download_attempts = offline_torch_home
    classification_network = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    file_name = VARIANTS["mobilenetv3"].imagenet_weights.url.rsplit("/", 1)[-1]
    save_state_dict(cache / file_name, classification_network)
    model = get_model("mobilenetv3", NUM_CLASSES, pretrained="imagenet")
    assert download_attempts == []
    expected = {key.removeprefix("features."): value for key, value in classification_network.items()
                if key.startswith("features.")}
    assert_same_tensors(model.backbone.state_dict(), expected)


def test_coco_weights_keep_everything_but_the_final_classifier_layer(offline_torch_home):
    cache, download_attempts = offline_torch_home
    coco_model = torchvision_deeplabv3_with_21_classes()
    file_name = VARIANTS["mobilenetv3"].coco_weights.url.rsplit("/", 1)[-1]
    save_state_dict(cache / file_name, coco_model.state_dict())
    model = get_model("mobilenetv3", NUM_CLASSES, pretrained="coco")
    assert download_attempts == []
    assert_same_tensors(model.backbone.state_dict(), coco_model.backbone.state_dict())
    for layer in range(4):
        assert_same_tensors(model.classifier[layer].state_dict(), coco_model.classifier[layer].state_dict())
    assert model.classifier[4].weight.shape == (NUM_CLASSES, 256, 1, 1)
    assert model.aux_classifier is None


@pytest.mark.parametrize(("name", "model_kwargs"), [("unet", {"base_width": 4}), ("mobilenetv3", {})])
def test_weights_file_with_a_whole_model_restores_every_tensor(tmp_path, offline_torch_home, name,
                                                               model_kwargs):
    torch.manual_seed(1)
    saved = get_model(name, NUM_CLASSES, **model_kwargs).state_dict()
    path = save_state_dict(tmp_path / "model.pt", saved)
    # pretrained is ignored when a file is given: no download may be attempted.
    model = get_model(name, NUM_CLASSES, pretrained="imagenet", weights_file=path, **model_kwargs)
    assert offline_torch_home[1] == []
    assert_same_tensors(model.state_dict(), saved)


def test_weights_file_accepts_checkpoints_and_distributed_prefixes(tmp_path):
    torch.manual_seed(2)
    saved = get_model("unet", 3, base_width=2).state_dict()
    checkpoint = save_state_dict(tmp_path / "checkpoint.pt", {"model_name": "unet", "state_dict": saved})
    distributed = save_state_dict(tmp_path / "ddp.pt",
                                  {f"module.{key}": value for key, value in saved.items()})
    for path in (checkpoint, distributed):
        assert_same_tensors(get_model("unet", 3, weights_file=path, base_width=2).state_dict(), saved)


def test_weights_file_with_a_torchvision_resnet_fills_the_backbone(tmp_path):
    torch.manual_seed(4)
    classification_network = torchvision.models.resnet50(weights=None).state_dict()
    # torchvision's ImageNet ResNet files predate BatchNorm's num_batches_tracked counters.
    without_counters = {key: value for key, value in classification_network.items()
                        if not key.endswith("num_batches_tracked")}
    path = save_state_dict(tmp_path / "resnet50.pth", without_counters)
    model = get_model("resnet50", NUM_CLASSES, weights_file=path)
    loaded = {key: value for key, value in model.backbone.state_dict().items()
              if not key.endswith("num_batches_tracked")}
    expected = {key: value for key, value in without_counters.items() if not key.startswith("fc.")}
    assert_same_tensors(loaded, expected)


def test_weights_file_with_a_prefixed_backbone_or_another_class_count(tmp_path):
    torch.manual_seed(3)
    source = torchvision_deeplabv3_with_21_classes()
    prefixed_backbone = {f"backbone.{key}": value for key, value in source.backbone.state_dict().items()}
    backbone_path = save_state_dict(tmp_path / "backbone.pt", prefixed_backbone)
    model = get_model("mobilenetv3", NUM_CLASSES, weights_file=backbone_path)
    assert_same_tensors(model.backbone.state_dict(), source.backbone.state_dict())

    whole_path = save_state_dict(tmp_path / "coco.pt", source.state_dict())
    model = get_model("mobilenetv3", NUM_CLASSES, weights_file=whole_path)
    assert_same_tensors(model.classifier[0].state_dict(), source.classifier[0].state_dict())
    assert model.classifier[4].out_channels == NUM_CLASSES


def test_weights_file_for_another_backbone_lists_offending_keys(tmp_path):
    mobilenet = torchvision.models.mobilenet_v3_large(weights=None)
    path = save_state_dict(tmp_path / "mobilenet.pth", mobilenet.state_dict())
    with pytest.raises(ClothVisionError) as raised:
        get_model("resnet50", NUM_CLASSES, weights_file=path)
    message = str(raised.value)
    assert str(path) in message
    assert "missing keys conv1.weight, bn1.weight, bn1.bias (+" in message
    assert "unexpected keys features.0.0.weight" in message
    assert "\n" not in message


def test_weights_file_with_wrong_shapes_names_them(tmp_path):
    path = save_state_dict(tmp_path / "narrow.pt", get_model("unet", NUM_CLASSES, base_width=2).state_dict())
    expected = r"narrow.pt does not match .*wrong shapes encoder.0.0.weight \[2, 3, 3, 3\] \(model \[4, "
    with pytest.raises(ClothVisionError, match=expected):
        get_model("unet", NUM_CLASSES, weights_file=path, base_width=4)


def test_unreadable_or_missing_weights_files_are_one_line_errors(tmp_path):
    with pytest.raises(ClothVisionError, match="absent.pt not found"):
        get_model("unet", NUM_CLASSES, weights_file=tmp_path / "absent.pt", base_width=2)
    not_a_state_dict = save_state_dict(tmp_path / "list.pt", [1, 2, 3])
    with pytest.raises(ClothVisionError, match="list.pt holds no state dict"):
        get_model("unet", NUM_CLASSES, weights_file=not_a_state_dict, base_width=2)
    arbitrary_pickle = tmp_path / "object.pt"
    torch.save({"weights": Path("object")}, arbitrary_pickle)
    with pytest.raises(ClothVisionError, match="object.pt cannot be read as a weights-only torch file"):
        get_model("unet", NUM_CLASSES, weights_file=arbitrary_pickle, base_width=2)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ClothVisionError, match="garbage.pt cannot be read"):
        get_model("unet", NUM_CLASSES, weights_file=garbage, base_width=2)


def test_model_kwargs_name_the_stem_only_when_it_is_not_the_original_one():
    assert model_kwargs_for("unet", 16) == {"base_width": 16}  # as every checkpoint before the stem recorded
    assert model_kwargs_for("unet", 16, "stride2") == {"base_width": 16, "stem": "stride2"}
    assert model_kwargs_for("mobilenetv3", 16, "stride2") == {}

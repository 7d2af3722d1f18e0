"""The blocks of a registered model as one real forward pass sees them, for scripts/draw_architectures.py.

Forward hooks on the blocks that matter record each one's output shape (channels, height, width) while a
1×3×H×W image goes through the model in eval mode under torch.no_grad(); nothing about the shapes is
written down by hand, so a figure drawn from a trace stays true when a model changes.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPPConv, ASPPPooling

from models.unet import UNet


@dataclass(frozen=True)
class Block:
    """One box of a figure: what the block is and the shape of what it outputs."""

    name: str
    detail: str
    channels: int
    height: int
    width: int

    def shape_text(self, input_height: int) -> str:
        """'560 ch · 62×38 (1/8)': the fraction is how far the block has shrunk the image."""
        stride = input_height / self.height
        fraction = "" if stride == 1 else f" (1/{stride:g})" if stride.is_integer() else f" (1/{stride:.1f})"
        return f"{self.channels} ch · {self.height}×{self.width}{fraction}"


@dataclass
class UNetTrace:
    encoder: list[Block] = field(default_factory=list)
    pools: list[Block] = field(default_factory=list)
    bottleneck: Block | None = None
    decoder: list[Block] = field(default_factory=list)
    classifier: Block | None = None
    # (encoder index, decoder index): the encoder output that each decoder block concatenates as its skip.
    skips: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class DeepLabV3Trace:
    backbone: list[Block]
    aspp_branches: list[Block]
    aspp_projection: Block
    head: list[Block]  # the 3×3 convolution, then the class scores
    output: Block


def block_from(tensor: torch.Tensor, name: str, detail: str) -> Block:
    _, channels, height, width = tensor.shape
    return Block(name, detail, channels, height, width)


@contextmanager
def forward_hooks(hooks: list[tuple[nn.Module, Callable]]) -> Iterator[None]:
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_forward(model: nn.Module, image_size: tuple[int, int]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.zeros(1, 3, *image_size))


def kernel_text(module: nn.Module) -> str:
    """'3×3': the kernel of a block's first convolution or pooling layer."""
    layer = next(layer for layer in module.modules() if hasattr(layer, "kernel_size"))
    size = layer.kernel_size
    height, width = size if isinstance(size, tuple) else (size, size)
    return f"{height}×{width}"


def trace_unet(model: UNet, image_size: tuple[int, int]) -> UNetTrace:
    trace = UNetTrace()
    encoder_outputs: list[torch.Tensor] = []
    upsampled: list[torch.Tensor] = []

    def record_encoder(module, inputs, output):
        encoder_outputs.append(output)
        detail = f"{type(module).__name__} {kernel_text(module)}"
        trace.encoder.append(block_from(output, f"encoder {len(trace.encoder) + 1}", detail))

    def record_pool(module, inputs, output):
        trace.pools.append(block_from(output, f"max-pool {kernel_text(module)}", ""))

    def record_bottleneck(module, inputs, output):
        trace.bottleneck = block_from(output, "bottleneck", f"{type(module).__name__} {kernel_text(module)}")

    def record_decoder(module, inputs, output):
        features, skip = inputs
        # The skip is the very tensor an encoder block returned: identity, not shape, names which one.
        source = next(index for index, encoder_output in enumerate(encoder_outputs) if encoder_output is skip)
        trace.skips.append((source, len(trace.decoder)))
        concatenated = skip.shape[1] + upsampled[-1].shape[1]
        detail = (f"up-conv {kernel_text(module.upsample)}, concat → {concatenated} ch, "
                  f"{type(module.convolutions).__name__}")
        trace.decoder.append(block_from(output, f"decoder {len(trace.decoder) + 1}", detail))

    def record_classifier(module, inputs, output):
        trace.classifier = block_from(output, "classifier", f"{kernel_text(module)} conv → class scores")

    hooks = [(block, record_encoder) for block in model.encoder]
    hooks += [(model.pool, record_pool), (model.bottleneck, record_bottleneck),
              (model.classifier, record_classifier)]
    for block in model.decoder:
        hooks += [(block.upsample, lambda module, inputs, output: upsampled.append(output)),
                  (block, record_decoder)]
    with forward_hooks(hooks):
        run_forward(model, image_size)
    return trace


def dilation_of(module: nn.Module) -> int:
    """The largest dilation among a block's convolutions (1 when it is not dilated)."""
    return max((conv.dilation[0] for conv in module.modules() if isinstance(conv, nn.Conv2d)), default=1)


RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def resnet_block_counts(model: nn.Module) -> dict[str, int]:
    """Bottleneck blocks in each of a DeepLabV3-ResNet's four layers, counted in the built model."""
    return {name: len(getattr(model.backbone, name)) for name in RESNET_LAYERS}


def resnet_layer_widths(model: nn.Module) -> dict[str, int]:
    """Output channels of each of a DeepLabV3-ResNet's four layers: those of its last convolution."""
    widths = {}
    for name in RESNET_LAYERS:
        convolutions = [layer for layer in getattr(model.backbone, name).modules() if isinstance(layer, nn.Conv2d)]
        widths[name] = convolutions[-1].out_channels
    return widths


def backbone_groups(backbone: nn.Module, shapes: dict[str, torch.Size]) -> list[tuple[str, list[str]]]:
    """The backbone's children grouped into stages: ResNet's stem and layers, MobileNetV3's blocks at each
    output stride (its children are numbered, and a stage is the run of them that keep one spatial size)."""
    names = list(shapes)
    if hasattr(backbone, "layer1"):
        stem = [name for name in names if not name.startswith("layer")]
        return [("stem", stem)] + [(name, [name]) for name in names if name.startswith("layer")]
    groups: list[list[str]] = []
    for name in names:
        if groups and shapes[groups[-1][-1]][-2:] == shapes[name][-2:]:
            groups[-1].append(name)
        else:
            groups.append([name])
    return [(f"features {members[0]}–{members[-1]}" if len(members) > 1 else f"features {members[0]}", members)
            for members in groups]


def backbone_stage_detail(backbone: nn.Module, members: list[str], shapes: dict[str, torch.Size]) -> str:
    """How many blocks a stage has, the widths it passes through and where it dilates instead of striding."""
    if members == ["conv1", "bn1", "relu", "maxpool"]:
        convolution, pool = backbone.conv1, backbone.maxpool
        return f"{kernel_text(convolution)} conv /{convolution.stride[0]}, max-pool /{pool.stride}"
    dilations = {name: dilation_of(getattr(backbone, name)) for name in members}
    dilated = [name for name in members if dilations[name] > 1]
    dilation_text = f", dilation {max(dilations.values())}" if dilated else ""
    if members[0].startswith("layer"):  # a ResNet layer: a Sequential of bottleneck blocks
        return f"{len(getattr(backbone, members[0]))} bottlenecks{dilation_text}"
    if dilated and dilated != members:
        dilation_text += f" in {dilated[0]}–{dilated[-1]}" if len(dilated) > 1 else f" in {dilated[0]}"
    widths = list(dict.fromkeys(shapes[name][1] for name in members))
    widths_text = f", widths {'·'.join(str(width) for width in widths)}" if len(widths) > 1 else ""
    return f"{len(members)} blocks{widths_text}{dilation_text}"


def aspp_branch_detail(branch: nn.Module) -> str:
    if isinstance(branch, ASPPPooling):
        return f"pool, {kernel_text(branch)} conv, upsample"
    if isinstance(branch, ASPPConv):
        return f"{kernel_text(branch)} conv, rate {dilation_of(branch)}"
    return f"{kernel_text(branch)} conv"


def trace_deeplabv3(model: nn.Module, image_size: tuple[int, int]) -> DeepLabV3Trace:
    backbone_outputs: dict[str, torch.Tensor] = {}
    head_outputs: dict[str, torch.Tensor] = {}
    aspp, head_convolution, class_convolution = model.classifier[0], model.classifier[1], model.classifier[4]

    def recorder(store: dict, key: str) -> Callable:
        def record(module, inputs, output):
            store[key] = output
        return record

    hooks = [(module, recorder(backbone_outputs, name)) for name, module in model.backbone.named_children()]
    hooks += [(branch, recorder(head_outputs, f"branch {index}")) for index, branch in enumerate(aspp.convs)]
    hooks += [(aspp.project, recorder(head_outputs, "project")),
              (model.classifier[3], recorder(head_outputs, "head")),  # the ReLU after the 3×3 convolution
              (class_convolution, recorder(head_outputs, "classes"))]
    with forward_hooks(hooks):
        logits = run_forward(model, image_size)
    backbone_shapes = {name: output.shape for name, output in backbone_outputs.items()}
    backbone = [Block(name, backbone_stage_detail(model.backbone, members, backbone_shapes),
                      *backbone_shapes[members[-1]][1:])
                for name, members in backbone_groups(model.backbone, backbone_shapes)]
    projection_detail = f"concat {aspp.project[0].in_channels} ch, {kernel_text(aspp.project)} conv, dropout"
    return DeepLabV3Trace(
        backbone=backbone,
        aspp_branches=[block_from(head_outputs[f"branch {index}"], f"ASPP {index + 1}", aspp_branch_detail(branch))
                       for index, branch in enumerate(aspp.convs)],
        aspp_projection=block_from(head_outputs["project"], "ASPP projection", projection_detail),
        head=[block_from(head_outputs["head"], "head", f"{kernel_text(head_convolution)} conv, BN, ReLU"),
              block_from(head_outputs["classes"], "classifier",
                         f"{kernel_text(class_convolution)} conv → class scores")],
        output=block_from(logits, "output", "bilinear upsampling to the input size"),
    )


def trace_model(model: nn.Module, image_size: tuple[int, int]) -> UNetTrace | DeepLabV3Trace:
    return trace_unet(model, image_size) if isinstance(model, UNet) else trace_deeplabv3(model, image_size)

"""Architecture figures for the README, drawn from the models themselves, with their parameters and FLOPs.

    python -m scripts.draw_architectures [--out-dir readme_imgs] [--size 496 304] [--models NAME ...]
                                         [--unet-base-width 70]

Per model: one forward pass of a 1×3×H×W image in eval mode with forward hooks on its blocks
(scripts/architecture_trace.py) records each block's channels and H×W; a block diagram of them is written
to <out-dir>/unet.png or <out-dir>/deeplabv3_<backbone>.png (scripts/architecture_drawing.py). ResNet-101
is ResNet-50 with a deeper layer3, so by default only ResNet-50 is drawn and its figure says how the two
differ, from the bottleneck blocks counted in both built models.
Prints a Markdown table of every registered model's parameters and forward GFLOP per image at --size
(FlopCounterMode, 2 FLOPs per multiply-add); each figure's title carries its model's row.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from benchmarks.flops import forward_flops_per_image
from helpers.errors import run_cli
from models import MODEL_NAMES, count_parameters, get_model, model_kwargs_for
from models.unet import DEFAULT_BASE_WIDTH
from preprocess import DEFAULT_SIZE, positive_int
from scripts.architecture_drawing import draw_deeplabv3, draw_unet
from scripts.architecture_trace import Block, UNetTrace, resnet_block_counts, resnet_layer_widths, trace_model

NUM_CLASSES = 59  # CCP's classes: background, skin, hair and 56 garments and accessories
DRAWN_BY_DEFAULT = ("unet", "resnet50", "mobilenetv3")
DISPLAY_NAMES = {"unet": "U-net", "mobilenetv3": "DeepLabV3-MobileNetV3-Large",
                 "resnet50": "DeepLabV3-ResNet-50", "resnet101": "DeepLabV3-ResNet-101"}
# Each ResNet variant's figure says how the other one differs.
OTHER_RESNET = {"resnet50": "resnet101", "resnet101": "resnet50"}


@dataclass(frozen=True)
class ModelCost:
    name: str
    parameters: int
    forward_flops: int

    def summary(self, image_size: tuple[int, int]) -> str:
        return (f"{self.parameters / 1e6:.1f} M parameters, {self.forward_flops / 1e9:.1f} GFLOP per "
                f"{image_size[0]}×{image_size[1]} image")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Draw every model's architecture from one traced forward pass.", add_help=add_help)
    parser.add_argument("--out-dir", type=Path, default=Path("readme_imgs"),
                        help="folder the PNG figures are written to (default: %(default)s)")
    parser.add_argument("--size", nargs=2, type=positive_int, default=list(DEFAULT_SIZE), metavar=("H", "W"),
                        help="input image height and width of the traced pass and of the FLOPs "
                             "(default: %(default)s, the preprocessing size)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(DRAWN_BY_DEFAULT),
                        help="models to draw; resnet101 only differs from resnet50 in depth, which the "
                             "resnet50 figure notes (default: %(default)s)")
    parser.add_argument("--unet-base-width", type=positive_int, default=DEFAULT_BASE_WIDTH,
                        help="channels of the U-net's first block (default: %(default)s, as train.py)")
    return parser


def build(name: str, unet_base_width: int) -> nn.Module:
    return get_model(name, NUM_CLASSES, pretrained="none", **model_kwargs_for(name, unet_base_width))


def figure_path(out_dir: Path, name: str) -> Path:
    return out_dir / ("unet.png" if name == "unet" else f"deeplabv3_{name}.png")


def measure_cost(name: str, model: nn.Module, image_size: tuple[int, int]) -> ModelCost:
    return ModelCost(name, count_parameters(model), forward_flops_per_image(model, image_size))


def resnet_depth_notes(name: str, models: dict[str, nn.Module]) -> list[str]:
    """How the other ResNet variant differs, from the blocks counted in both models (not from memory)."""
    other = OTHER_RESNET[name]
    counts, other_counts = resnet_block_counts(models[name]), resnet_block_counts(models[other])
    for model_name, layer_counts in ((name, counts), (other, other_counts)):
        print(f"{model_name} bottleneck blocks per layer: "
              + ", ".join(f"{layer} {count}" for layer, count in layer_counts.items()), file=sys.stderr)
    widths, other_widths = resnet_layer_widths(models[name]), resnet_layer_widths(models[other])
    differences = [f"{other_counts[layer]} instead of {counts[layer]} blocks in {layer}"
                   for layer in counts if counts[layer] != other_counts[layer]]
    differences += [f"{other_widths[layer]} instead of {widths[layer]} output channels in {layer}"
                    for layer in widths if widths[layer] != other_widths[layer]]
    only_depth = "only in depth: the same stages and widths" if widths == other_widths else "in width and depth"
    return [f"{DISPLAY_NAMES[other]} differs {only_depth}, with {', '.join(differences)} "
            f"(bottleneck blocks per layer: {'-'.join(map(str, counts.values()))} here, "
            f"{'-'.join(map(str, other_counts.values()))} in {DISPLAY_NAMES[other]})."]


def draw_model(name: str, models: dict[str, nn.Module], cost: ModelCost, image_size: tuple[int, int],
               out_dir: Path, unet_base_width: int):
    """Trace the model, draw its figure; returns the trace so that callers can check what was drawn."""
    trace = trace_model(models[name], image_size)
    input_block = Block("input", "RGB image", 3, *image_size)
    title = f"{DISPLAY_NAMES[name]}: {cost.summary(image_size)}"
    path = figure_path(out_dir, name)
    if isinstance(trace, UNetTrace):
        draw_unet(trace, input_block, f"{title} (base width {unet_base_width})", path)
    else:
        output_stride = image_size[0] / trace.backbone[-1].height
        notes = [f"Dilated convolutions replace the backbone's last strides: ASPP works at 1/{output_stride:g} "
                 "of the input and the class scores are upsampled back to its full size."]
        notes += resnet_depth_notes(name, models) if name in OTHER_RESNET else []
        draw_deeplabv3(trace, input_block, title, notes, path)
    print(f"wrote {path}", file=sys.stderr)
    return trace


def cost_table(costs: list[ModelCost], drawn: dict[str, Path], image_size: tuple[int, int]) -> str:
    lines = [f"| model | figure | parameters | GFLOP per image at {image_size[0]}×{image_size[1]} |",
             "| --- | --- | --- | --- |"]
    for cost in costs:
        shown_in = drawn.get(cost.name) or drawn.get(OTHER_RESNET.get(cost.name, ""))
        figure_cell = "not drawn" if shown_in is None else f"`{shown_in.name}`" + (
            "" if cost.name in drawn else f" ({DISPLAY_NAMES[OTHER_RESNET[cost.name]]}'s figure; differs in depth)")
        lines.append(f"| `{cost.name}` ({DISPLAY_NAMES[cost.name]}) | {figure_cell} | "
                     f"{cost.parameters / 1e6:.1f} M | {cost.forward_flops / 1e9:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    image_size = tuple(args.size)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # Every registered model gets a table row (counting is cheap); only the chosen ones are traced and drawn.
    models = {name: build(name, args.unet_base_width) for name in MODEL_NAMES}
    costs = [measure_cost(name, model, image_size) for name, model in models.items()]
    traces, drawn = {}, {}
    for name, cost in zip(MODEL_NAMES, costs, strict=True):
        if name in args.models:
            traces[name] = draw_model(name, models, cost, image_size, args.out_dir, args.unet_base_width)
            drawn[name] = figure_path(args.out_dir, name)
    print(cost_table(costs, drawn, image_size))
    return traces


if __name__ == "__main__":
    sys.exit(run_cli(main))

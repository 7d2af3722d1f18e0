from PIL import Image

from models import MODEL_NAMES
from scripts import draw_architectures
from scripts.architecture_drawing import wrap_detail

# Small enough for every model to trace in a few seconds, large enough for the U-net's four poolings and
# for DeepLabV3's 1/8 and 1/16 feature maps to keep a few pixels; not square, so a swapped H and W shows.
HEIGHT, WIDTH = 48, 32
UNET_BASE_WIDTH = 4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_every_registered_model_is_traced_and_drawn(tmp_path, capsys):
    traces = draw_architectures.main(["--out-dir", str(tmp_path), "--size", str(HEIGHT), str(WIDTH),
                                      "--unet-base-width", str(UNET_BASE_WIDTH), "--models", *MODEL_NAMES])
    output = capsys.readouterr()

    assert set(traces) == set(MODEL_NAMES)
    expected_files = {"unet.png", "deeplabv3_mobilenetv3.png", "deeplabv3_resnet50.png", "deeplabv3_resnet101.png"}
    assert {path.name for path in tmp_path.iterdir()} == expected_files
    for name in expected_files:
        path = tmp_path / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.width > 1000 and image.height > 400

    unet = traces["unet"]
    assert [block.channels for block in unet.encoder] == [UNET_BASE_WIDTH * 2**level for level in range(4)]
    assert [(block.height, block.width) for block in unet.pools] == [(HEIGHT // 2**level, WIDTH // 2**level)
                                                                    for level in range(1, 5)]
    assert unet.bottleneck.channels == 16 * UNET_BASE_WIDTH
    assert (unet.bottleneck.height, unet.bottleneck.width) == (HEIGHT // 16, WIDTH // 16)
    assert [block.channels for block in unet.decoder] == [8 * UNET_BASE_WIDTH, 4 * UNET_BASE_WIDTH,
                                                          2 * UNET_BASE_WIDTH, UNET_BASE_WIDTH]
    # Each decoder block concatenates the encoder output of its own level: the deepest first.
    assert unet.skips == [(3, 0), (2, 1), (1, 2), (0, 3)]
    assert (unet.classifier.channels, unet.classifier.height, unet.classifier.width) == (59, HEIGHT, WIDTH)

    for name in ("mobilenetv3", "resnet50", "resnet101"):
        trace = traces[name]
        assert [branch.channels for branch in trace.aspp_branches] == [256] * 5
        assert [branch.detail for branch in trace.aspp_branches[1:4]] == [f"3×3 conv, rate {rate}"
                                                                         for rate in (12, 24, 36)]
        assert trace.aspp_projection.channels == 256
        assert trace.aspp_projection.detail.startswith("concat 1280 ch")
        assert trace.head[1].channels == 59
        assert (trace.output.channels, trace.output.height, trace.output.width) == (59, HEIGHT, WIDTH)
    resnet50 = traces["resnet50"]
    assert [stage.name for stage in resnet50.backbone] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert [stage.channels for stage in resnet50.backbone] == [64, 256, 512, 1024, 2048]
    # Dilation keeps layer2 to layer4 and the ASPP at 1/8 of the input.
    assert {(stage.height, stage.width) for stage in resnet50.backbone[2:]} == {(HEIGHT // 8, WIDTH // 8)}
    assert resnet50.backbone[3].detail == "6 bottlenecks, dilation 2"
    assert traces["resnet101"].backbone[3].detail == "23 bottlenecks, dilation 2"
    assert "resnet101 bottleneck blocks per layer: layer1 3, layer2 4, layer3 23, layer4 3" in output.err
    mobilenet = traces["mobilenetv3"]
    assert mobilenet.backbone[-1].channels == 960
    assert (mobilenet.backbone[-1].height, mobilenet.backbone[-1].width) == (HEIGHT // 16, WIDTH // 16)

    table = output.out.strip().splitlines()
    assert table[0] == f"| model | figure | parameters | GFLOP per image at {HEIGHT}×{WIDTH} |"
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| `{name}` ({draw_architectures.DISPLAY_NAMES[name]})"
                                                             for name in MODEL_NAMES]


def test_the_table_sends_resnet101_to_the_resnet50_figure(tmp_path):
    costs = [draw_architectures.ModelCost(name, 10**6, 10**9) for name in MODEL_NAMES]
    drawn = {"resnet50": tmp_path / "deeplabv3_resnet50.png"}
    rows = draw_architectures.cost_table(costs, drawn, (496, 304)).splitlines()
    assert rows[0] == "| model | figure | parameters | GFLOP per image at 496×304 |"
    rows_by_model = {row.split("`")[1]: row for row in rows[2:]}
    assert "`deeplabv3_resnet50.png` (DeepLabV3-ResNet-50's figure; differs in depth)" in rows_by_model["resnet101"]
    assert rows_by_model["resnet50"].endswith("| `deeplabv3_resnet50.png` | 1.0 M | 1.0 |")
    assert "not drawn" in rows_by_model["unet"]


def test_long_details_break_between_their_parts():
    lines = wrap_detail("10 blocks, widths 80·112·160·960, dilation 2 in 13–15", width=2.0)
    assert lines == ["10 blocks,", "widths 80·112·160·960,", "dilation 2 in 13–15"]
    assert wrap_detail("", width=2.0) == []

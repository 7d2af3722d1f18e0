"""train.py's command line, built from TrainingOptions' fields (trainers.options): one flag per field, in
argument groups, each with its default and help text; plus --config, which reads a recipe file (recipes/*.json)
or a run's <model>_config.json as the defaults that the other flags given beside it override."""

import argparse
import json
from pathlib import Path

from helpers.errors import ClothVisionError
from trainers.option_lookup import default_of, flag_of, keyword_of, option_fields, option_keyword_names
from trainers.options import OPTION_GROUPS

# The splits --evaluate scores: the training split would only measure how well the network memorised it.
EVALUATION_SPLITS = ("val", "test")
# The one key of a recipe file that is not an option: what the recipe is for, and how it was chosen.
RECIPE_DESCRIPTION = "description"
CONFIG_HINT = "pass a recipe file (a JSON object of train() keywords) or a <model>_config.json that train.py wrote"
# Which flags were given is told apart from defaults by parsing once more with this as every default.
NOT_GIVEN = object()


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    groups = {name: parser.add_argument_group(name) for name in OPTION_GROUPS}
    for option_field in option_fields():
        metadata, default = option_field.metadata, default_of(option_field)
        group, dest = groups[metadata["group"]], keyword_of(option_field)
        flag = flag_of(option_field)
        if isinstance(default, bool):
            action = "store_false" if default else "store_true"
            # The help of a bool option describes its flag, which is off unless given.
            group.add_argument(flag, dest=dest, action=action, help=f"{metadata['help']} (default: off)")
            continue
        value_type = type(default) if default is not None else (float if "float" in str(option_field.type) else str)
        group.add_argument(flag, dest=dest, type=value_type, default=default, choices=metadata["choices"],
                           help=f"{metadata['help']} (default: %(default)s)")
        if metadata["alias"]:
            alias_flag, value, alias_help = metadata["alias"]
            group.add_argument(alias_flag, dest=dest, action="store_const", const=value,
                               help=f"{alias_help} (default: off)")


def get_args_parser(description: str = "", add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, add_help=add_help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="read a recipe file (recipes/*.json: a JSON object of a few train() keywords, e.g. "
        '{"model": "unet", "unet_base_width": 16}) or the <out>/<model>_config.json of a run (to repeat it) as the '
        "defaults; flags given beside it override them (default: none)",
    )
    add_option_arguments(parser)
    command = parser.add_argument_group(
        "evaluation command", "score a saved checkpoint instead of training (torchvision's --test-only); it reads "
        "--data, --tta, --precision, --device, --batch-size and --no-progress, and --out names the report's JSON "
        "file"
    )
    command.add_argument("--evaluate", metavar="CHECKPOINT", default=None,
                         help="evaluate this checkpoint (.pt written by train.py) and exit (default: train)")
    command.add_argument("--split", choices=EVALUATION_SPLITS, default="test",
                         help="the checkpoint's own split to score (default: %(default)s)")
    return parser


def read_config_options(path: str | Path) -> dict:
    """train()'s keywords from a recipe file ({"model": "unet", ...}, plus an optional "description") or from
    the "options" a <model>_config.json recorded."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClothVisionError(f"config {path} not found: {CONFIG_HINT}") from None
    except (OSError, ValueError) as error:
        raise ClothVisionError(f"config {path} cannot be read ({type(error).__name__}): {CONFIG_HINT}") from None
    if not isinstance(content, dict) or not isinstance(content.get("options", {}), dict):
        raise ClothVisionError(f"config {path} is not a JSON object of options: {CONFIG_HINT}")
    recorded = (content["options"] if "options" in content
                else {key: value for key, value in content.items() if key != RECIPE_DESCRIPTION})
    unknown = sorted(set(recorded) - option_keyword_names())
    if unknown:
        raise ClothVisionError(
            f"config {path} has options this train.py does not know ({', '.join(unknown)}): "
            "remove them from the file or use the version of the code that wrote it"
        )
    return recorded


def parse_given_options(argv: list[str] | None, description: str = "") -> dict:
    """The options the command line gives: the --config file's values, overridden by the flags given beside
    it. Options given neither way are left out, so that train() can tell them from explicit ones."""
    parser = get_args_parser(description)
    parser.parse_args(argv)  # --help, and errors in the usual argparse form
    parser.set_defaults(**{action.dest: NOT_GIVEN for action in parser._actions if action.dest != "help"})
    arguments = vars(parser.parse_args(argv))
    config = arguments.pop("config")
    given = read_config_options(config) if config is not NOT_GIVEN else {}
    given.update({keyword: value for keyword, value in arguments.items() if value is not NOT_GIVEN})
    return given

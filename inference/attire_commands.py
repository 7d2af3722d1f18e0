"""img_test.py --describe and --find: descriptions printed, written as JSON Lines, searched and drawn."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from helpers.atomic_files import atomic_write_text
from helpers.errors import ClothVisionError
from helpers.figures import figure_format, finish_figure
from inference.attire import (
    ClassMapSource,
    DescribedPhoto,
    LabelSource,
    PhotoDescription,
    PredictionSource,
    describe_path,
    describe_photo,
    read_descriptions,
    skipped_summary,
    write_descriptions,
)
from inference.attire_figures import draw_contact_sheet, draw_description_figure
from inference.image_tags import garment_group_of_class, photo_tags
from inference.predictor import SegmentationPredictor
from inference.provenance import check_same_checkpoint
from inference.search import no_match_message, parse_query, rank
from inference.tag_scores import score_tags, tag_score_table

DESCRIPTION_FILE_SUFFIXES = (".json", ".jsonl")


class Sources:
    """Where class maps come from: labels, or checkpoints loaded only when a prediction is first needed."""

    def __init__(self, args: argparse.Namespace,
                 load_predictor: Callable[[str | None], SegmentationPredictor]):
        self.use_labels, self.minimum_share = args.use_labels, args.min_share
        # None: the default checkpoint, or for a redrawn photo the one its description records.
        self.given_checkpoint = args.checkpoint
        self.load_predictor = load_predictor
        self.predictions: dict[str | None, PredictionSource] = {}

    def prediction(self, checkpoint: str | None) -> PredictionSource:
        if checkpoint not in self.predictions:
            source = PredictionSource(self.load_predictor(checkpoint), self.minimum_share)
            # Under its path too: the photos it describes record that path, and redrawing them needs no reload.
            self.predictions[checkpoint] = self.predictions.setdefault(source.checkpoint, source)
        return self.predictions[checkpoint]

    def chosen(self) -> ClassMapSource:
        return LabelSource() if self.use_labels else self.prediction(self.given_checkpoint)

    def recorded(self, description: PhotoDescription) -> ClassMapSource:
        """The source a description was made from: its labels, or the checkpoint it records unless
        --checkpoint names one, which must then be the same file."""
        if description.source == LabelSource.name:
            return LabelSource()
        source = self.prediction(self.given_checkpoint or description.checkpoint)
        if description.checkpoint_sha256 is not None:
            check_same_checkpoint(description.image, description.checkpoint, description.checkpoint_sha256,
                                  source.predictor.checkpoint_path, source.checkpoint_sha256)
        return source


def save_descriptions(descriptions: list[PhotoDescription], json_file: str | None) -> None:
    if json_file is not None:
        write_descriptions(json_file, descriptions)
        print(f"Wrote {len(descriptions)} descriptions to {json_file}")


def print_descriptions(descriptions: list[PhotoDescription], json_file: str | None) -> None:
    for description in descriptions:
        print(f"{description.image}: {description.text()}")
    save_descriptions(descriptions, json_file)


def report_tag_scores(args: argparse.Namespace, descriptions: list[PhotoDescription], sources: Sources) -> None:
    """--score-tags: the garments described against each photo's tags, printed and written to --tag-report."""
    photos = [({garment.name for garment in description.garments}, photo_tags(description.path))
              for description in descriptions]
    source = sources.chosen()
    measured = {"source": source.name, "min_share": source.minimum_share}
    if source.name == PredictionSource.name:
        measured |= {"checkpoint": str(source.predictor.checkpoint_path), "tta": source.predictor.tta}
    report = {**score_tags(photos, garment_group_of_class()), "measured": measured}
    print(f"Garments described ({source.name}, min share {source.minimum_share:g}) against the tags of "
          f"{report['photos']} photos:")
    print(tag_score_table(report))
    if args.tag_report is not None:
        atomic_write_text(args.tag_report, json.dumps(report, indent=2) + "\n")
        print(f"Wrote the tag scores to {args.tag_report}")


def run_describe(args: argparse.Namespace, image_path: Path, sources: Sources) -> None:
    """One line per photo; with --save, the figure of the one photo; with --score-tags, the scores."""
    if args.save is None:
        descriptions, skipped = describe_path(image_path, sources.chosen())
        print_descriptions(descriptions, args.json)
        if skipped:
            print(skipped_summary(skipped))
        if args.score_tags:
            report_tag_scores(args, descriptions, sources)
        return
    figure_format(args.save)
    if image_path.is_dir():
        raise ClothVisionError(f"{image_path} is a folder, and --save draws the figure of one photo: pass one "
                               "photo, or leave out --save")
    described = describe_photo(image_path, sources.chosen())
    print_descriptions([described.description], args.json)
    title = f"{image_path.name}, described from its {described.description.source}"
    finish_figure(draw_description_figure(described, title, show=False), show=False, save_to=args.save)
    print(f"Saved the figure to {args.save}")


def redrawn(description: PhotoDescription, sources: Sources) -> DescribedPhoto:
    """A described photo read again, with its class map from the source it was described from."""
    path = Path(description.path)
    if not path.is_file():
        raise ClothVisionError(f"photo {path} of {description.image}'s description is gone: describe the photos "
                               "again where they are now, or leave out --save")
    return describe_photo(path, sources.recorded(description))


def run_find(args: argparse.Namespace, input_path: Path, sources: Sources) -> None:
    """Rank a folder's photos (described now) or a descriptions file's (described before) by the query."""
    terms = parse_query(args.find)
    if args.save is not None:
        figure_format(args.save)
    if input_path.is_file() and input_path.suffix.lower() in DESCRIPTION_FILE_SUFFIXES:
        descriptions = read_descriptions(input_path)
    else:
        descriptions, skipped = describe_path(input_path, sources.chosen())
        save_descriptions(descriptions, args.json)
        if skipped:
            print(skipped_summary(skipped))
    matches = rank(descriptions, terms)[: args.top]
    if all(match.score == 0 for match in matches):
        print(no_match_message(terms, descriptions) + ("; no contact sheet drawn" if args.save else ""))
        return
    print(f"The {len(matches)} best of {len(descriptions)} photos for \"{', '.join(map(str, terms))}\":")
    for position, match in enumerate(matches, start=1):
        print(f"{position:>3}. {match.description.image}  {match.score:.2f}  {match.description.text()}")
    if args.save is not None:
        sheet = draw_contact_sheet([(match, redrawn(match.description, sources)) for match in matches],
                                   args.find, show=False)
        finish_figure(sheet, show=False, save_to=args.save)
        print(f"Saved the contact sheet to {args.save}")

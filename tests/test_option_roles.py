"""An option's roles sit on its field: what --resume keeps, refuses to change or never takes, and what the
test report records; docs/training.md's flag list agrees with the fields."""

import re
from pathlib import Path

import pytest

from trainers.checkpointing import resume_problem
from trainers.option_lookup import flag_of, keywords_with_resume_role, option_fields, option_keywords, reported_options
from trainers.options import TrainingOptions

TRAINING_DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"


def run_checkpoint(**options) -> dict:
    """The parts of a checkpoint that decide whether another run may continue it."""
    return {"model_name": "unet", "class_names": ["null", "shirt"], "model_kwargs": {"base_width": 4},
            "image_size": [32, 32], "split_ids": {"train": ["1"], "val": ["2"], "test": ["3"]},
            "config": {"options": option_keywords(TrainingOptions(**options))}}


def test_resume_refuses_a_change_of_an_option_that_must_match_and_keeps_the_others():
    assert keywords_with_resume_role("match") == {"lr_schedule", "ema_decay", "progressive_resize"}
    found = run_checkpoint(lr_schedule="poly", seed=3)
    assert resume_problem(found, run_checkpoint(lr_schedule="poly", seed=4)) is None
    assert resume_problem(found, run_checkpoint(lr_schedule="cosine")) == (
        "it was trained with --lr-schedule poly, this run asks for cosine")
    # A checkpoint from before the options were recorded in its config ran with the defaults.
    assert resume_problem({**found, "config": {}}, run_checkpoint(lr_schedule="poly")) == (
        "it was trained with --lr-schedule plateau, this run asks for poly")


def test_where_and_how_a_run_runs_is_never_taken_from_the_interrupted_one():
    assert keywords_with_resume_role("never") == {"model", "data", "out", "resume", "device", "show_plots",
                                                  "show_progress", "dist_timeout"}


def test_the_test_report_records_the_options_marked_reported():
    options = TrainingOptions(loss="ce+jaccard", lr_schedule="cosine", augment="none", seed=5, ema_decay=0.99,
                              progressive_resize=0.5)
    assert reported_options(options) == {"lr_schedule": "cosine", "loss": "ce+jaccard", "ema_decay": 0.99,
                                         "augment": "none", "zoom_range": 2.0, "progressive_resize": 0.5}


def documented_groups() -> dict[str, str]:
    """docs/training.md's "Option groups" bullets: group name -> the bullet's text."""
    section = TRAINING_DOC.read_text().split("## Option groups", 1)[1].split("\n## ", 1)[0]
    bullets = re.findall(r"^- \*\*([a-z ]+)\*\*: (.*?)(?=^- \*\*|\Z)", section, flags=re.MULTILINE | re.DOTALL)
    return dict(bullets)


@pytest.mark.parametrize("option_field", option_fields(), ids=lambda option_field: option_field.name)
def test_docs_list_every_flag_in_its_group(option_field):
    group, alias = option_field.metadata["group"], option_field.metadata["alias"]
    text = documented_groups()[group]
    for flag in [flag_of(option_field)] + ([alias[0]] if alias else []):
        assert re.search(rf"`{re.escape(flag)}(?![\w-])", text), f"{flag} is not listed under {group}"


def test_docs_list_no_flag_that_train_py_lacks():
    known = {flag_of(option_field) for option_field in option_fields()}
    known |= {option_field.metadata["alias"][0] for option_field in option_fields() if option_field.metadata["alias"]}
    known |= {"--evaluate", "--split", "--config"}
    listed = {flag for text in documented_groups().values() for flag in re.findall(r"`(--[a-z][a-z-]*)", text)}
    assert listed <= known

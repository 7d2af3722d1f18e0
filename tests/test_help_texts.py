"""train.py's help texts against the code they describe: the default schedule, the files a run writes and the
flags --evaluate reads."""

import re

from training_runs import (
    build_cache,
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

import train as train_script
from trainers.command_line import get_args_parser
from trainers.evaluate_command import EVALUATION_KEYWORDS
from trainers.options import TrainingOptions

# --evaluate accepts these without using them: --split has its own help, --no-show draws no figure there.
NOT_READ_BY_EVALUATE = {"split", "show_plots"}


def test_the_docstring_names_the_default_learning_rate_schedule():
    assert f"(--lr-schedule {TrainingOptions().lr_schedule}, the default)" in train_script.__doc__


def test_the_docstring_names_every_file_a_training_run_writes(tmp_path):
    out = tmp_path / "results"
    run_train(model="unet", data=build_cache(tmp_path), out=out, epochs=1)
    written = sorted(path.name.replace("unet", "<model>") for path in out.iterdir())
    assert len(written) == 7
    description = " ".join(train_script.__doc__.split())
    assert [name for name in written if name not in description] == []


def test_the_evaluation_command_help_names_every_flag_it_reads():
    [group] = [group for group in get_args_parser()._action_groups if group.title == "evaluation command"]
    named = set(re.findall(r"--[a-z-]+", group.description))
    expected = {"--no-progress" if keyword == "show_progress" else "--" + keyword.replace("_", "-")
                for keyword in EVALUATION_KEYWORDS if keyword not in NOT_READ_BY_EVALUATE}
    assert expected - named == set()

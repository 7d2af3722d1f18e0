"""The whole run's estimated time: printed once a model has taken its first steps, kept as an ETA in the
progress bar, and on a CPU, when it exceeds two hours, one line naming the CPU recipe.

The estimate counts every epoch of every requested model, validations included, a time limit capping a
model's share: the models this invocation finished count the time they took; the model training counts
the time it took so far and the rest extrapolated from its seconds per step (RunProgress.remaining_seconds).
A model not started yet has no measured step: it is named as not counted rather than guessed, so the
estimate is then a lower bound (which the two-hour warning may still rely on).

It is printed after a model's third step, not its first: the first step carries one-off costs (memory
allocation, cuDNN's algorithm search, compilation) and would inflate a whole-run extrapolation, while waiting
for a whole epoch would leave the default CPU run silent for about two hours.
"""

import time

from tqdm import tqdm

# The step after which a model's estimate is printed: its first step is not timed, the next two are.
FIRST_ESTIMATE_STEP = 3
LONG_CPU_RUN_SECONDS = 2 * 3600
CPU_RECIPE_COMMANDS = (
    "python preprocess.py --size 240 144 --out data/processed_240x144",
    "python train.py --config recipes/cpu-hour.json --data data/processed_240x144",
)


def describe_duration(seconds: float) -> str:
    """'45 s', '12 min', '64 h 05 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class WholeRunEstimate:
    """The time of every requested model of one train.py invocation (rank 0's)."""

    def __init__(self, model_names: list[str], device_type: str):
        self.model_names, self.device_type = list(model_names), device_type
        self.started = time.perf_counter()
        self.models_started = 0
        self.announced = self.warned = False

    def start_model(self) -> None:
        self.models_started += 1
        self.announced = False

    def observe(self, name: str, remaining_model_seconds: float, seconds_per_step: float, announce: bool) -> str:
        """After a timed step of model `name`: the whole run's remaining time as text, for the progress bar.
        With `announce`, the first time for this model, the estimate is printed (and the CPU warning once)."""
        elapsed = time.perf_counter() - self.started
        total = elapsed + remaining_model_seconds
        if announce and not self.announced:
            self.announced = True
            not_started = self.model_names[self.models_started:]
            tqdm.write(
                f"{name}: estimated whole run {describe_duration(total)}, {describe_duration(total - elapsed)} left "
                f"({seconds_per_step:.3g} s a training step, every epoch and validation, capped by a time limit"
                + (f"; not counted yet: {', '.join(not_started)}, each estimated when it starts)" if not_started
                   else ")")
            )
            if self.device_type == "cpu" and total > LONG_CPU_RUN_SECONDS and not self.warned:
                self.warned = True
                tqdm.write(
                    f"{name}: this run takes more than two hours on this CPU (it goes on); the CPU recipe trains a "
                    f"U-net in 60 minutes on 2 cores: `{CPU_RECIPE_COMMANDS[0]}` then `{CPU_RECIPE_COMMANDS[1]}`"
                )
        return describe_duration(total - elapsed)

"""bench.py rows on the training recipe's costs on a CPU: a training step with the soft-Jaccard term added to
cross-entropy against cross-entropy alone, and a step of the model compiled with torch.compile against eager.
Both contenders of a row take turns in the same run, at the project's CPU precision."""

import torch

from benchmarks.model_rows import ModelSetting
from benchmarks.precision_rows import training_step
from benchmarks.table import Row, format_ratio, format_seconds
from benchmarks.timing import median_seconds_alternating, time_call
from helpers.devices import resolve_precision
from helpers.errors import error_reason

CPU = torch.device("cpu")
# The CPU study compiles its models only if a step gains at least this much.
COMPILE_GOAL = ">= 1.2x (else the study runs eager)"


def measured_on(setting: ModelSetting, batch_size: int) -> str:
    return (f"{setting.describe()}, batch {batch_size}, cpu, {resolve_precision('auto', CPU).describe()}, "
            f"{torch.get_num_threads()} threads")


def measure_loss_cost(setting: ModelSetting, batch_size: int, repeats: int) -> Row:
    """A training step with --loss ce+jaccard against --loss ce, same model, batch and precision."""
    precision = resolve_precision("auto", CPU)
    seconds = median_seconds_alternating(
        {loss: training_step(setting, precision, batch_size, loss) for loss in ("ce", "ce+jaccard")},
        repeats=repeats)
    return Row("training loss", f"cross-entropy: {format_seconds(seconds['ce'])}/step",
               f"cross-entropy + soft-Jaccard: {format_seconds(seconds['ce+jaccard'])}/step",
               f"{format_ratio(seconds['ce+jaccard'] / seconds['ce'])} the time", "-",
               f"{measured_on(setting, batch_size)}, median of {repeats} alternated")


def compile_row(setting: ModelSetting, batch_size: int, repeats: int, backend: str) -> Row:
    precision = resolve_precision("auto", CPU)
    eager = training_step(setting, precision, batch_size)
    compiled = training_step(setting, precision, batch_size, compile_backend=backend)
    try:
        first_step = time_call(compiled)
    except Exception as error:  # whatever stops the compiler here (no C++ compiler, an unsupported op)
        return Row("CPU compile", "-", "-", f"torch.compile ({backend}) failed on this machine: "
                   f"{error_reason(error)}", COMPILE_GOAL, measured_on(setting, batch_size))
    seconds = median_seconds_alternating({"eager": eager, "compiled": compiled}, repeats=repeats)
    return Row("CPU compile", f"eager: {format_seconds(seconds['eager'])}/step",
               f"torch.compile ({backend}): {format_seconds(seconds['compiled'])}/step, first step "
               f"(compiling) {format_seconds(first_step)}",
               f"{format_ratio(seconds['eager'] / seconds['compiled'])} faster", COMPILE_GOAL,
               f"{measured_on(setting, batch_size)}, median of {repeats} alternated")


def measure_compile_speedup(settings: list[ModelSetting], batch_size: int, repeats: int,
                            backend: str = "inductor") -> list[Row]:
    """Per model: a training step of the model compiled with torch.compile against the eager model. The
    first compiled step, which compiles, is timed apart and left out of the median; a compiler that fails
    on this machine gives a row that says so."""
    rows = []
    for setting in settings:
        try:
            rows.append(compile_row(setting, batch_size, repeats, backend))
        finally:
            torch._dynamo.reset()  # the next model compiles from scratch, within dynamo's cache limits
    return rows

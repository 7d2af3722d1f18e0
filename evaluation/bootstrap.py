"""95 % percentile bootstrap intervals over test images, paired comparisons of two models, and seeded
comparisons of two recipes (training randomness included) with their verdict.

Each resample draws as many images as the split holds, with replacement, sums their pixel counts and
recomputes the dataset-level metric from the sums, as the test report computes it from the split's one
confusion matrix. All resamples are computed at once: a resample is a row of weights (how often each image
was drawn), and its sums are one matrix product.

Every resample is scored by exactly the point estimate's rule (trainers/metrics.py) applied to its summed
counts: mIoU averages the classes labelled somewhere in the resample's photos, so a class that the resample's
photos lack is left out of its mean, even where the model predicts it there (those pixels still lower the
IoU of their true class and the pixel accuracy), as the point estimate leaves out a class that the split
lacks. Scored any other way, a resample that misses a rare class would count it 0 (or 1) where the point
estimate does not count it at all, and the interval would lean away from its own point. The same holds for
garment groups.
"""

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
# A verdict ("A better") needs this many seeds per recipe: one seed's interval covers the test photos drawn,
# not training randomness, and two seeds cannot show a spread.
MIN_SEEDS = 3
METRICS = ("pixel_accuracy", "miou", "group_miou")


@dataclass(frozen=True)
class PixelCounts:
    """Per image (rows) and class (columns), N×K int64: the pixels of the class predicted as it (the
    confusion matrix's diagonal), labelled as it (row sums) and predicted as it (column sums)."""

    correct: np.ndarray
    labelled: np.ndarray
    predicted: np.ndarray


@dataclass(frozen=True)
class ImageStatistics:
    """What the bootstrap needs of one model's per-image confusion matrices: class counts, and garment
    group counts when the classes have groups."""

    classes: PixelCounts
    groups: PixelCounts | None = None


def pixel_counts(matrices: np.ndarray) -> PixelCounts:
    """Reduce N×K×K confusion matrices (rows true, columns predicted) to what the metrics need."""
    matrices = np.asarray(matrices, dtype=np.int64)
    if matrices.ndim != 3 or matrices.shape[1] != matrices.shape[2]:
        raise ValueError(f"expected N×K×K confusion matrices, got shape {matrices.shape}")
    return PixelCounts(correct=np.diagonal(matrices, axis1=1, axis2=2).copy(),
                       labelled=matrices.sum(axis=2), predicted=matrices.sum(axis=1))


def group_matrices(matrices: np.ndarray, class_groups: np.ndarray) -> np.ndarray:
    """N×G×G group confusion matrices: rows and columns of the class matrices summed by group, so that a
    shirt taken for a blouse counts as right. class_groups[k] is the group index of class k."""
    matrices = np.asarray(matrices, dtype=np.int64)
    class_groups = np.asarray(class_groups, dtype=np.int64)
    if class_groups.shape != (matrices.shape[1],):
        raise ValueError(f"{class_groups.shape} group indices for {matrices.shape[1]} classes: give one per class")
    membership = np.zeros((class_groups.max() + 1, len(class_groups)), dtype=np.int64)
    membership[class_groups, np.arange(len(class_groups))] = 1
    return membership @ matrices @ membership.T


def image_statistics(matrices: np.ndarray, class_groups: np.ndarray | None = None) -> ImageStatistics:
    """The bootstrap's input from one confusion matrix per image (N×K×K) and, optionally, the group index
    of every class (e.g. GarmentGroups.group_index)."""
    groups = None if class_groups is None else pixel_counts(group_matrices(matrices, class_groups))
    return ImageStatistics(pixel_counts(matrices), groups)


def resample_weights(image_count: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """resamples×image_count: how often each image is drawn in each resample (every row sums to
    image_count), from a seeded numpy Generator."""
    if image_count < 1:
        raise ValueError("the bootstrap needs at least one image")
    drawn = np.random.default_rng(seed).integers(0, image_count, size=(resamples, image_count))
    flat = (drawn + image_count * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * image_count).reshape(resamples, image_count)


def present_classes(counts: PixelCounts) -> np.ndarray:
    """Mask of the classes labelled somewhere in the split; a split without any labelled pixel is refused."""
    present = counts.labelled.sum(axis=0) > 0
    if not present.any():
        raise ValueError("no image has a labelled pixel: there is no metric to resample")
    return present


def pixel_accuracy(counts: PixelCounts, weights: np.ndarray) -> np.ndarray:
    """The pixel accuracy of every resample (one per row of weights)."""
    present_classes(counts)
    weights = weights.astype(np.float64)
    return (weights @ counts.correct.sum(axis=1)) / (weights @ counts.labelled.sum(axis=1))


def mean_iou(counts: PixelCounts, weights: np.ndarray) -> np.ndarray:
    """The mIoU of every resample over the classes labelled in that resample (see the module's docstring)."""
    present_classes(counts)
    weights = weights.astype(np.float64)
    correct, labelled, predicted = (weights @ values for values in (counts.correct, counts.labelled, counts.predicted))
    present = labelled > 0
    iou = np.divide(correct, labelled + predicted - correct, out=np.zeros_like(correct), where=present)
    return iou.sum(axis=1) / present.sum(axis=1)


def metric_per_resample(statistics: ImageStatistics, metric: str, weights: np.ndarray) -> np.ndarray:
    """One of METRICS for every row of weights; weights of all ones give the point estimate."""
    if metric == "pixel_accuracy":
        return pixel_accuracy(statistics.classes, weights)
    if metric == "miou":
        return mean_iou(statistics.classes, weights)
    if metric == "group_miou":
        if statistics.groups is None:
            raise ValueError("group_miou needs the statistics built with class_groups")
        return mean_iou(statistics.groups, weights)
    raise ValueError(f"unknown metric '{metric}': use one of {', '.join(METRICS)}")


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """[low, high]: the central confidence share of values."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def bootstrap_intervals(statistics: ImageStatistics, resamples: int = RESAMPLES, seed: int = 0,
                        confidence: float = CONFIDENCE) -> dict[str, list[float]]:
    """{"pixel_accuracy": [low, high], "miou": [...], "group_miou": [...]} (fractions, like the metrics;
    group_miou only when the statistics have groups): percentile intervals over resampled images."""
    weights = resample_weights(len(statistics.classes.correct), resamples, seed)
    metrics = [metric for metric in METRICS if metric != "group_miou" or statistics.groups is not None]
    return {metric: percentile_interval(metric_per_resample(statistics, metric, weights), confidence)
            for metric in metrics}


def check_same_pixels(statistics: list[ImageStatistics]) -> int:
    """The image count of models scored on the same labelled pixels; anything else is refused."""
    first = statistics[0].classes.labelled
    if any(other.classes.labelled.shape != first.shape or not np.array_equal(other.classes.labelled, first)
           for other in statistics[1:]):
        raise ValueError("the models were not scored on the same labelled pixels: a paired comparison "
                         "needs the same images, in the same order, at the same size")
    return len(first)


def point_estimate(statistics: ImageStatistics, metric: str) -> float:
    return float(metric_per_resample(statistics, metric, np.ones((1, len(statistics.classes.labelled))))[0])


def paired_difference(statistics_a: ImageStatistics, statistics_b: ImageStatistics, metric: str = "miou",
                      resamples: int = RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE) -> dict:
    """{"difference": a − b, "interval": [low, high]} of metric (mIoU by default) between two models scored
    on the same images in the same order: both are recomputed on the same resampled images, so what the
    images have in common (an easy or a hard photo) cancels out of the difference."""
    weights = resample_weights(check_same_pixels([statistics_a, statistics_b]), resamples, seed)
    resampled = metric_per_resample(statistics_a, metric, weights) - metric_per_resample(statistics_b, metric, weights)
    return {"difference": point_estimate(statistics_a, metric) - point_estimate(statistics_b, metric),
            "interval": percentile_interval(resampled, confidence)}


def seeded_paired_difference(seeds_a: list[ImageStatistics], seeds_b: list[ImageStatistics], metric: str = "miou",
                             resamples: int = RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE) -> dict:
    """{"difference": mean over a's seeds − mean over b's seeds, "interval": [low, high]} of two recipes, each
    trained once per seed and scored on the same images: a two-level bootstrap that draws each recipe's seeds
    with replacement, then the images (the same resampled images for every run), so the interval holds
    training randomness as well as which photos were tested."""
    weights = resample_weights(check_same_pixels([*seeds_a, *seeds_b]), resamples, seed)
    seed_draws = np.random.default_rng([seed, 1])
    rows = np.arange(resamples)[:, None]

    def mean_over_drawn_seeds(runs: list[ImageStatistics]) -> np.ndarray:
        scores = np.stack([metric_per_resample(run, metric, weights) for run in runs])
        drawn = seed_draws.integers(0, len(runs), size=(resamples, len(runs)))
        return scores[drawn, rows].mean(axis=1)

    difference = (np.mean([point_estimate(run, metric) for run in seeds_a])
                  - np.mean([point_estimate(run, metric) for run in seeds_b]))
    resampled = mean_over_drawn_seeds(seeds_a) - mean_over_drawn_seeds(seeds_b)
    return {"difference": float(difference), "interval": percentile_interval(resampled, confidence)}


def verdict(name_a: str, name_b: str, interval: list[float], seeds_a: int, seeds_b: int) -> str:
    """'A better' only with MIN_SEEDS seeds each and an interval of a − b that excludes 0."""
    if min(seeds_a, seeds_b) < MIN_SEEDS:
        return f"no verdict (fewer than {MIN_SEEDS} seeds)"
    low, high = interval
    if low > 0 or high < 0:
        return f"{name_a if low > 0 else name_b} better"
    return "no difference shown"


def format_with_interval(value: float, interval: list[float], digits: int = 1) -> str:
    """'9.3 % (8.1–10.4)': a metric (a fraction) and its [low, high] interval, as percentages."""
    low, high = interval
    return f"{100 * value:.{digits}f} % ({100 * low:.{digits}f}–{100 * high:.{digits}f})"

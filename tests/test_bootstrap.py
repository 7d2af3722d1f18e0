import numpy as np
import pytest

from evaluation.bootstrap import (
    ImageStatistics,
    bootstrap_intervals,
    format_with_interval,
    group_matrices,
    image_statistics,
    metric_per_resample,
    paired_difference,
    pixel_counts,
    resample_weights,
    seeded_paired_difference,
    verdict,
)
from trainers.metrics import metrics_from_confusion

# Two images, three classes (rows true, columns predicted). Class 2 is neither labelled nor predicted in A;
# class 1 is not labelled in B but predicted once there.
IMAGE_A = [[5, 1, 0], [0, 2, 0], [0, 0, 0]]
IMAGE_B = [[4, 1, 1], [0, 0, 0], [0, 0, 3]]
HAND_MATRICES = np.array([IMAGE_A, IMAGE_B])


def realistic_matrices(seed: int, images: int = 40, classes: int = 12) -> np.ndarray:
    """Per-image matrices with a dominant background, mostly right, a few classes rare and badly found."""
    rng = np.random.default_rng(seed)
    matrices = np.zeros((images, classes, classes), dtype=np.int64)
    for matrix in matrices:
        shown = rng.random(classes) < np.linspace(1.0, 0.1, classes)
        for true_class in np.flatnonzero(shown):
            pixels = int(rng.integers(50, 5000 if true_class else 50000))
            skill = rng.uniform(0.2, 0.95) if true_class < classes - 2 else 0.05
            matrix[true_class] = rng.multinomial(pixels, np.where(np.arange(classes) == true_class, skill,
                                                                  (1 - skill) / (classes - 1)))
    return matrices


def test_pixel_counts_and_group_matrices_by_hand():
    counts = pixel_counts(HAND_MATRICES)
    np.testing.assert_array_equal(counts.correct, [[5, 2, 0], [4, 0, 3]])
    np.testing.assert_array_equal(counts.labelled, [[6, 2, 0], [6, 0, 3]])
    np.testing.assert_array_equal(counts.predicted, [[5, 3, 0], [4, 1, 4]])
    # Classes 1 and 2 form group 1: a class-2 pixel taken for class 1 is right at the group level.
    np.testing.assert_array_equal(group_matrices(HAND_MATRICES, np.array([0, 1, 1])),
                                  [[[5, 1], [0, 2]], [[4, 2], [0, 3]]])
    with pytest.raises(ValueError, match="one per class"):
        group_matrices(HAND_MATRICES, np.array([0, 1]))


def test_metrics_of_hand_picked_resamples_follow_the_point_estimates_rule():
    statistics = image_statistics(HAND_MATRICES)
    # Whole split, A twice, B twice.
    weights = np.array([[1, 1], [2, 0], [0, 2]])
    np.testing.assert_allclose(metric_per_resample(statistics, "pixel_accuracy", weights), [14 / 17, 7 / 8, 7 / 9])
    # Whole split: IoUs 9/12, 2/4, 3/4. A twice: 10/12, 4/6 (class 2, not labelled there, is left out). B
    # twice: 8/12 and 6/8; class 1, predicted there but not labelled, is left out as the point estimate leaves
    # out a class absent from the split's ground truth.
    expected_miou = [(3 / 4 + 1 / 2 + 3 / 4) / 3, (5 / 6 + 2 / 3) / 2, (2 / 3 + 3 / 4) / 2]
    np.testing.assert_allclose(metric_per_resample(statistics, "miou", weights), expected_miou)
    # Groups {0}, {1, 2}: whole split [[9, 3], [0, 5]] -> IoUs 9/12, 5/8.
    grouped = image_statistics(HAND_MATRICES, np.array([0, 1, 1]))
    np.testing.assert_allclose(metric_per_resample(grouped, "group_miou", weights[:1]), [(9 / 12 + 5 / 8) / 2])
    with pytest.raises(ValueError, match="group_miou needs the statistics built with class_groups"):
        metric_per_resample(statistics, "group_miou", weights)


def test_rare_class_predicted_on_photos_that_lack_it_keeps_the_point_inside_its_interval():
    """A rare class labelled on 3 of 60 photos and predicted on every photo: a resample's photos often lack it.
    Scored by the point estimate's own rule the resamples centre on the point; scoring such a resample's rare
    class 0 would pull most of them below it."""
    rng = np.random.default_rng(0)
    matrices = np.zeros((60, 4, 4), dtype=np.int64)
    for index, matrix in enumerate(matrices):
        matrix[0, 0], matrix[0, 3] = 9000, 40  # background, a few pixels of it taken for the rare class 3
        matrix[1, 1], matrix[1, 0] = rng.integers(600, 900), rng.integers(100, 300)
        matrix[2, 2], matrix[2, 1] = rng.integers(200, 400), rng.integers(100, 300)
        if index % 20 == 0:
            matrix[3, 3], matrix[3, 0] = 300, 20
    statistics = image_statistics(matrices, np.array([0, 1, 1, 2]))
    classes = metrics_from_confusion(matrices.sum(axis=0))
    groups = metrics_from_confusion(group_matrices(matrices, np.array([0, 1, 1, 2])).sum(axis=0))
    point = {"pixel_accuracy": classes["pixel_accuracy"], "miou": classes["miou"], "group_miou": groups["miou"]}
    weights = resample_weights(60)
    for metric, (low, high) in bootstrap_intervals(statistics).items():
        assert low <= point[metric] <= high, metric
        median = np.median(metric_per_resample(statistics, metric, weights))
        assert abs(median - point[metric]) < 0.001, (metric, median, point[metric])


def test_resample_weights_are_seeded_draws_of_every_image_count():
    weights = resample_weights(7, resamples=50, seed=3)
    assert weights.shape == (50, 7) and (weights.sum(axis=1) == 7).all() and (weights >= 0).all()
    np.testing.assert_array_equal(weights, resample_weights(7, resamples=50, seed=3))
    assert not np.array_equal(weights, resample_weights(7, resamples=50, seed=4))
    # Some image is drawn twice or more in almost every resample, so these are not permutations.
    assert (weights.max(axis=1) > 1).mean() > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intervals_contain_the_point_estimate(seed):
    statistics = image_statistics(realistic_matrices(seed), np.arange(12) // 3)
    intervals = bootstrap_intervals(statistics, seed=seed)
    assert sorted(intervals) == ["group_miou", "miou", "pixel_accuracy"]
    ones = np.ones((1, 40), dtype=np.int64)
    for metric, (low, high) in intervals.items():
        point = metric_per_resample(statistics, metric, ones)[0]
        assert low < point < high, metric
        assert high - low < 0.3
    assert bootstrap_intervals(statistics, seed=seed) == intervals
    assert bootstrap_intervals(statistics, seed=seed + 10) != intervals


def test_identical_images_give_a_zero_width_interval_at_the_point_estimate():
    matrices = np.repeat(realistic_matrices(0, images=1), 25, axis=0)
    statistics = image_statistics(matrices, np.arange(12) // 3)
    single = image_statistics(matrices[:1], np.arange(12) // 3)
    for metric, (low, high) in bootstrap_intervals(statistics).items():
        point = metric_per_resample(single, metric, np.ones((1, 1), dtype=np.int64))[0]
        assert low == pytest.approx(point, abs=1e-12) and high == pytest.approx(point, abs=1e-12), metric


def test_a_model_compared_with_itself_differs_by_exactly_zero():
    statistics = image_statistics(realistic_matrices(1), np.arange(12) // 3)
    for metric in ("pixel_accuracy", "miou", "group_miou"):
        assert paired_difference(statistics, statistics, metric) == {"difference": 0.0, "interval": [0.0, 0.0]}


def test_paired_difference_of_a_better_model_is_positive_and_narrower_than_unpaired_intervals():
    matrices = realistic_matrices(2)
    # Model a turns a tenth of every class's errors into correct pixels: better on every image.
    errors = matrices * (1 - np.eye(12, dtype=np.int64))
    fixed = errors // 10
    better = matrices - fixed + fixed.sum(axis=2)[:, :, None] * np.eye(12, dtype=np.int64)
    statistics_a, statistics_b = image_statistics(better), image_statistics(matrices)
    ones = np.ones((1, 40), dtype=np.int64)
    result = paired_difference(statistics_a, statistics_b)
    expected = (metric_per_resample(statistics_a, "miou", ones) - metric_per_resample(statistics_b, "miou", ones))[0]
    assert result["difference"] == pytest.approx(expected) and expected > 0
    low, high = result["interval"]
    assert 0 < low < expected < high
    # The images' own difficulty cancels out: the paired interval is narrower than either model's own.
    own_low, own_high = bootstrap_intervals(statistics_b)["miou"]
    assert high - low < (own_high - own_low) / 3


def test_paired_difference_refuses_models_scored_on_other_pixels():
    matrices = realistic_matrices(0)
    with pytest.raises(ValueError, match="same images, in the same order, at the same size"):
        paired_difference(image_statistics(matrices), image_statistics(matrices[::-1]))


def test_statistics_without_any_labelled_pixel_are_refused():
    empty = ImageStatistics(pixel_counts(np.zeros((3, 4, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match="no image has a labelled pixel"):
        bootstrap_intervals(empty)


def test_format_with_interval_shows_percentages():
    assert format_with_interval(0.093, [0.0812, 0.1036]) == "9.3 % (8.1–10.4)"
    assert format_with_interval(0.8575, [0.85, 0.8649], digits=2) == "85.75 % (85.00–86.49)"


def improved(matrices: np.ndarray, share: float) -> np.ndarray:
    """The same labelled pixels with share of every class's mistakes turned right: a better trained model."""
    eye = np.eye(matrices.shape[1], dtype=np.int64)
    moved = (matrices * (1 - eye) * share).astype(np.int64)
    return matrices - moved + eye * moved.sum(axis=2)[:, :, None]


def test_seeded_verdict_says_better_only_when_every_seed_agrees():
    base = realistic_matrices(0)
    recipe = {name: [image_statistics(improved(base, share)) for share in shares]
              for name, shares in (("a", (0.30, 0.02, 0.16)), ("b", (0.20, 0.12, 0.14)), ("c", (0.45, 0.47, 0.46)))}
    # Seed by seed the photos alone would call each pair: a ahead at seed 0, b ahead at seed 1.
    first_seeds = paired_difference(recipe["a"][0], recipe["b"][0])["interval"]
    second_seeds = paired_difference(recipe["a"][1], recipe["b"][1])["interval"]
    assert first_seeds[0] > 0 and second_seeds[1] < 0
    a_against_b = seeded_paired_difference(recipe["a"], recipe["b"])
    low, high = a_against_b["interval"]
    assert low < 0 < high and low <= a_against_b["difference"] <= high
    assert verdict("a", "b", a_against_b["interval"], 3, 3) == "no difference shown"
    c_against_b = seeded_paired_difference(recipe["c"], recipe["b"])
    assert c_against_b["interval"][0] > 0
    assert verdict("c", "b", c_against_b["interval"], 3, 3) == "c better"
    assert verdict("b", "c", [-0.2, -0.1], 3, 3) == "c better"
    assert verdict("c", "b", c_against_b["interval"], 3, 2) == "no verdict (fewer than 3 seeds)"
    # Seeded the same way, the bootstrap repeats itself exactly.
    assert seeded_paired_difference(recipe["c"], recipe["b"]) == c_against_b

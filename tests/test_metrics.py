import pytest
import torch
import torch.distributed as dist

from trainers.metrics import ConfusionMatrix, metrics_from_confusion

# Rows are true classes, columns predicted classes.
THREE_CLASS_MATRIX = [
    [5, 1, 0],
    [2, 3, 1],
    [0, 1, 7],
]


def pixels_of(matrix: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One (prediction, target) pixel pair per count of the matrix, shuffled into an N×H×W batch."""
    targets, predictions = [], []
    for true_class, row in enumerate(matrix):
        for predicted_class, count in enumerate(row):
            targets += [true_class] * count
            predictions += [predicted_class] * count
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(0))
    return torch.tensor(predictions)[order].reshape(2, 2, -1), torch.tensor(targets)[order].reshape(2, 2, -1)


def test_metrics_of_a_hand_computed_matrix():
    metrics = metrics_from_confusion(THREE_CLASS_MATRIX, class_names=["background", "shirt", "skin"])
    # 20 pixels, 5 + 3 + 7 = 15 on the diagonal.
    assert metrics["pixel_accuracy"] == pytest.approx(15 / 20)
    # Recall per class: 5/6, 3/6, 7/8.
    assert metrics["per_class_accuracy"] == pytest.approx([5 / 6, 3 / 6, 7 / 8])
    assert metrics["mean_accuracy"] == pytest.approx((5 / 6 + 3 / 6 + 7 / 8) / 3)
    # IoU = TP / (row sum + column sum - TP): 5/(6+7-5), 3/(6+5-3), 7/(8+8-7).
    assert metrics["per_class_iou"] == pytest.approx([5 / 8, 3 / 8, 7 / 9])
    assert metrics["miou"] == pytest.approx(16 / 27)
    # Weighted by ground-truth frequency 6/20, 6/20, 8/20.
    assert metrics["fw_iou"] == pytest.approx(6 / 20 * 5 / 8 + 6 / 20 * 3 / 8 + 8 / 20 * 7 / 9)
    assert metrics["fw_iou"] == pytest.approx(11 / 18)
    assert metrics["num_classes_present"] == 3
    assert metrics["iou_by_class_name"] == pytest.approx({"background": 5 / 8, "shirt": 3 / 8, "skin": 7 / 9})


def test_a_class_absent_from_the_ground_truth_is_left_out_even_when_predicted():
    matrix = [
        [3, 0, 1],  # one background pixel predicted as class 2, which never occurs in the ground truth
        [1, 2, 0],
        [0, 0, 0],
    ]
    metrics = metrics_from_confusion(torch.tensor(matrix))
    assert metrics["per_class_iou"][2] is None
    assert metrics["per_class_accuracy"][2] is None
    assert metrics["num_classes_present"] == 2
    # Class 2's false positive still costs class 0: IoU 3 / (4 + 4 - 3).
    assert metrics["per_class_iou"][:2] == pytest.approx([3 / 5, 2 / 3])
    assert metrics["miou"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert metrics["mean_accuracy"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert metrics["fw_iou"] == pytest.approx(4 / 7 * 3 / 5 + 3 / 7 * 2 / 3)
    assert metrics["pixel_accuracy"] == pytest.approx(5 / 7)


def test_perfect_predictions_score_one_over_present_classes():
    metrics = metrics_from_confusion([[4, 0, 0], [0, 0, 0], [0, 0, 9]])
    summary = [metrics[name] for name in ("pixel_accuracy", "mean_accuracy", "miou", "fw_iou")]
    assert summary == [1, 1, 1, 1]
    assert metrics["per_class_iou"] == [1.0, None, 1.0]


def test_confusion_matrix_counts_pixels_and_ignores_targets_outside_the_classes():
    predictions, targets = pixels_of(THREE_CLASS_MATRIX)
    # Pixels whose target is an ignore value (255, -1) must not be counted whatever is predicted.
    ignored_predictions = torch.tensor([[[0, 1, 2]]])
    ignored_targets = torch.tensor([[[255, -1, 3]]])
    confusion = ConfusionMatrix(3)
    confusion.update(predictions, targets)
    confusion.update(ignored_predictions, ignored_targets)
    assert confusion.matrix.dtype == torch.int64
    assert confusion.matrix.tolist() == THREE_CLASS_MATRIX
    assert confusion.compute()["miou"] == pytest.approx(16 / 27)

    confusion.update(predictions, targets)
    assert confusion.matrix.tolist() == [[2 * count for count in row] for row in THREE_CLASS_MATRIX]
    confusion.reset()
    assert confusion.matrix.sum().item() == 0


def test_confusion_matrix_accepts_uint8_targets_and_argmax_predictions():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2, 0, 0] = 1.0  # one pixel predicted as class 2, the rest as class 0
    targets = torch.tensor([[[2, 1], [0, 0]]], dtype=torch.uint8)
    confusion = ConfusionMatrix(3)
    confusion.update(logits.argmax(dim=1), targets)
    assert confusion.matrix.tolist() == [[2, 0, 0], [1, 0, 0], [0, 0, 1]]


def test_mismatched_shapes_and_empty_or_misnamed_matrices_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        ConfusionMatrix(3).update(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        ConfusionMatrix(3).compute()
    with pytest.raises(ValueError, match="2 class names"):
        metrics_from_confusion(THREE_CLASS_MATRIX, class_names=["a", "b"])
    with pytest.raises(ValueError, match="square"):
        metrics_from_confusion([[1, 2, 3]])


def test_reduce_is_a_no_op_without_a_process_group():
    confusion = ConfusionMatrix(3)
    confusion.update(*pixels_of(THREE_CLASS_MATRIX))
    confusion.reduce_across_processes()
    assert confusion.matrix.tolist() == THREE_CLASS_MATRIX


def test_reduce_sums_the_matrices_of_all_ranks(monkeypatch):
    predictions, targets = pixels_of(THREE_CLASS_MATRIX)
    other_rank = ConfusionMatrix(3)
    other_rank.update(predictions[1], targets[1])

    def all_reduce_with_the_other_rank(tensor):
        tensor += other_rank.matrix

    # A stand-in for a two-process group: this rank sees the first image of the batch, the other the second.
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "all_reduce", all_reduce_with_the_other_rank)
    confusion = ConfusionMatrix(3)
    confusion.update(predictions[0], targets[0])
    assert confusion.matrix.tolist() != THREE_CLASS_MATRIX
    confusion.reduce_across_processes()
    assert confusion.matrix.tolist() == THREE_CLASS_MATRIX

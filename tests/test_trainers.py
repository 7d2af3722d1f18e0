"""Pieces of the training loop: class weights, whole-split losses, early stopping, the backbone's rate and freezing."""

import math

import pytest
import torch
import torch.nn.functional as F
from training_runs import (
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from dataset import load_cache
from helpers.batch_augmentation import IGNORE_INDEX
from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError
from models import get_model
from trainers import ModelTrainer, TrainingOptions, TransferLearningTrainer, trainer_class_for
from trainers.losses import class_weights_from_counts
from trainers.metrics import correct_pixels
from trainers.option_lookup import check_option_values
from trainers.schedules import PlateauSchedule
from trainers.training_epoch import WeightAverage


def make_trainer(name: str, cache_dir, **options) -> ModelTrainer:
    torch.manual_seed(0)
    model_kwargs = {"base_width": 4} if name == "unet" else {}
    model = get_model(name, 59, **model_kwargs)
    return trainer_class_for(name)(
        model,
        name,
        model_kwargs,
        load_cache(cache_dir),
        torch.device("cpu"),
        "unused",
        TrainingOptions(show_progress=False, **options),
    )


def test_inverse_log_frequency_weights():
    weights = class_weights_from_counts([70, 20, 10, 0], "inverse-log-freq")
    expected = [1 / math.log(1.02 + 0.7), 1 / math.log(1.02 + 0.2), 1 / math.log(1.02 + 0.1), 0.0]
    assert weights.tolist() == pytest.approx(expected, rel=1e-6)
    assert class_weights_from_counts([70, 20, 10, 0], "none") is None


def test_a_larger_class_weight_offset_gives_rare_classes_smaller_weights(cache_dir):
    weights = class_weights_from_counts([70, 20, 10, 0], "inverse-log-freq", offset=1.2)
    expected = [1 / math.log(1.2 + 0.7), 1 / math.log(1.2 + 0.2), 1 / math.log(1.2 + 0.1), 0.0]
    assert weights.tolist() == pytest.approx(expected, rel=1e-6)
    counts = load_cache(cache_dir).meta["train_class_pixel_counts"]
    default = make_trainer("unet", cache_dir, class_weights="inverse-log-freq").class_weights
    assert torch.equal(default, class_weights_from_counts(counts, "inverse-log-freq", offset=1.02))
    capped = make_trainer("unet", cache_dir, class_weights="inverse-log-freq", class_weight_offset=1.2).class_weights
    assert torch.equal(capped, class_weights_from_counts(counts, "inverse-log-freq", offset=1.2))
    assert capped.max() < default.max()
    with pytest.raises(ClothVisionError, match="--class-weight-offset 1: use an offset above 1"):
        check_option_values(TrainingOptions(class_weight_offset=1.0))


def test_correct_pixels_counts_where_the_true_class_scores_highest():
    # Two images of 1×2 pixels, three classes; the best class per pixel is 2, 0 | 1, 1.
    logits = torch.tensor([[[[0.1, 3.0]], [[0.2, 1.0]], [[0.9, 2.0]]], [[[0.0, 0.0]], [[1.0, 5.0]], [[0.5, 4.0]]]])
    labels = torch.tensor([[[2, 1]], [[1, 2]]])
    everywhere = torch.ones_like(labels, dtype=torch.bool)
    assert correct_pixels(logits, labels, everywhere).item() == 2
    assert correct_pixels(logits, logits.argmax(dim=1), everywhere).item() == 4
    # An ignored pixel counts as neither right nor wrong, whatever its label value.
    ignored = torch.tensor([[[2, IGNORE_INDEX]], [[1, 1]]])
    assert correct_pixels(logits, ignored, ignored != IGNORE_INDEX).item() == 3



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_correct_pixels_breaks_ties_as_argmax_does(dtype):
    # One image of 1×3 pixels, three classes; each pixel ties its best score between two classes.
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[2.0, 3.0, 0.0]], [[0.0, 3.0, 1.0]]]], dtype=dtype)
    everywhere = torch.ones((1, 1, 3), dtype=torch.bool)
    assert logits.argmax(dim=1).tolist() == [[[0, 1, 0]]]
    assert correct_pixels(logits, torch.tensor([[[0, 1, 0]]]), everywhere).item() == 3
    assert correct_pixels(logits, torch.tensor([[[1, 2, 2]]]), everywhere).item() == 0

def test_trainer_class_follows_the_registry():
    assert trainer_class_for("unet") is ModelTrainer
    assert all(trainer_class_for(name) is TransferLearningTrainer for name in ("mobilenetv3", "resnet50", "resnet101"))


@pytest.mark.parametrize("class_weights", ["none", "inverse-log-freq"])
def test_split_loss_is_the_loss_of_the_whole_split_whatever_the_batch_size(cache_dir, class_weights):
    # float32, so that the reference below, computed in float32, is the same arithmetic.
    one_by_one = make_trainer("unet", cache_dir, batch_size=1, class_weights=class_weights,
                              precision="fp32").evaluate("val")
    trainer = make_trainer("unet", cache_dir, batch_size=3, class_weights=class_weights, precision="fp32")
    batched = trainer.evaluate("val")
    assert torch.equal(one_by_one["confusion_matrix"], batched["confusion_matrix"])
    assert one_by_one["loss"] == pytest.approx(batched["loss"], rel=1e-6)
    loader = trainer.loaders["val"]
    images, labels = loader.images.float(), loader.labels.long()
    with torch.no_grad():
        logits = trainer.model(torch.addcmul(loader.shift, images, loader.scale))
    whole_split = F.cross_entropy(logits, labels, weight=trainer.class_weights)
    assert batched["loss"] == pytest.approx(whole_split.item(), rel=1e-5)


def test_early_stopping_ends_the_run(cache_dir, tmp_path):
    # The first epoch improves on no loss at all; no later val loss improves by 100, so epoch 2 is bad.
    result = run_train(model="unet", data=cache_dir, out=tmp_path, epochs=5, patience=1, min_delta=100.0)["unet"]
    assert [row["epoch"] for row in result["history"]] == [1, 2]


def test_val_loss_decisions_wait_for_the_epochs_trained_at_full_size(cache_dir, tmp_path, monkeypatch):
    # 6 epochs of 2 steps: the steps at t = 0 to 5/12 (epochs 1-3) train at half size, where the val loss (at full
    # size) says little. The same early stopper as above first sees epoch 4, so epoch 5 is the bad one.
    losses_seen = []
    monkeypatch.setattr(PlateauSchedule, "end_epoch", lambda schedule, val_loss: losses_seen.append(val_loss))
    result = run_train(model="unet", data=cache_dir, out=tmp_path, epochs=6, patience=1, min_delta=100.0,
                       lr_schedule="plateau", progressive_resize=0.5)["unet"]
    history = result["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert losses_seen == [history[3]["val_loss"], history[4]["val_loss"]]


def test_backbone_learns_ten_times_slower_and_stays_frozen_at_first(cache_dir):
    trainer = make_trainer("mobilenetv3", cache_dir, batch_size=4, learning_rate=1e-3, backbone_lr_factor=0.1,
                           freeze_backbone_epochs=1)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [1e-3, pytest.approx(1e-4)]
    backbone = set(map(id, trainer.model.backbone.parameters()))
    head, backbone_group = ([id(p) for p in group["params"]] for group in trainer.optimizer.param_groups)
    assert set(backbone_group) == backbone and not backbone & set(head)
    assert len(head) + len(backbone_group) == len(list(trainer.model.parameters()))

    def snapshot():
        return {key: value.clone() for key, value in trainer.model.state_dict().items()}

    before = snapshot()
    trainer.prepare_epoch(1)
    trainer.train_one_epoch(1)
    frozen_epoch = snapshot()
    changed = {key for key in before if not torch.equal(before[key], frozen_epoch[key])}
    assert changed and all(key.startswith("classifier.") for key in changed)  # BatchNorm statistics included
    trainer.prepare_epoch(2)
    assert all(parameter.requires_grad for parameter in trainer.model.parameters())
    trainer.train_one_epoch(2)
    after = snapshot()
    assert any(not torch.equal(frozen_epoch[key], after[key]) for key in after if key.startswith("backbone."))


def test_ddp_wraps_once_per_set_of_trainable_parameters(cache_dir, monkeypatch):
    """A backbone frozen for the first epoch: DDP is built for the frozen set, then for the whole network,
    never at start-up before the first epoch has chosen."""
    import trainers.model_trainer as model_trainer
    from trainers.distributed import DistributedContext

    wrapped = []

    def fake_ddp(module, device_ids=None):
        wrapped.append(frozenset(name for name, parameter in module.named_parameters() if parameter.requires_grad))
        return module

    monkeypatch.setattr(model_trainer, "DistributedDataParallel", fake_ddp)
    torch.manual_seed(0)
    trainer = TransferLearningTrainer(get_model("mobilenetv3", 59), "mobilenetv3", {}, load_cache(cache_dir),
                                      torch.device("cpu"), "unused",
                                      TrainingOptions(batch_size=2, freeze_backbone_epochs=1, show_progress=False),
                                      DistributedContext(rank=0, world_size=2))
    assert wrapped == []
    for epoch in (1, 2, 3):
        trainer.prepare_epoch(epoch)
        trainer.train_one_epoch(epoch)
    assert len(wrapped) == 2
    assert not any(name.startswith("backbone.") for name in wrapped[0])
    assert wrapped[1] == {name for name, _ in trainer.model.named_parameters()}


def test_unet_stem_reaches_the_model_and_its_checkpoint(cache_dir, tmp_path):
    run_train(model="unet", data=cache_dir, out=tmp_path, epochs=1, unet_stem="stride2")
    checkpoint = load_checkpoint(tmp_path / "unet.pt")
    assert checkpoint["model_kwargs"] == {"base_width": 4, "stem": "stride2"}
    assert checkpoint["state_dict"]["stem.0.weight"].shape == (4, 3, 3, 3)


def test_the_weight_average_warms_its_decay_up_and_averages_batchnorm_statistics_too():
    live = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1, bias=False), torch.nn.BatchNorm2d(1))
    average = WeightAverage(live, decay=0.5)
    with torch.no_grad():
        live[0].weight.fill_(1.0)
        average.model[0].weight.fill_(0.0)
        live[1].running_mean.fill_(2.0)
        live[1].num_batches_tracked.fill_(7)
    average.update()  # decay min(0.5, 2 / 11): the average moves 9/11 of the way
    assert average.model[0].weight.item() == pytest.approx(9 / 11)
    assert average.model[1].running_mean.item() == pytest.approx(2 * 9 / 11)
    assert average.model[1].num_batches_tracked.item() == 7
    for _ in range(9):
        average.update()  # from the 8th update on, (1 + n) / (10 + n) >= 0.5: the decay is 0.5
    assert average.updates == 10
    left_of_the_start = math.prod((1 + n) / (10 + n) for n in range(1, 8)) * 0.5 ** 3
    assert average.model[0].weight.item() == pytest.approx(1 - left_of_the_start)
    assert not any(parameter.requires_grad for parameter in average.model.parameters())

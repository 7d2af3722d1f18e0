"""evaluate_checkpoint scores a checkpoint on its own split's images, whatever cache it is given."""

import re

import numpy as np
import pytest
from synthetic_ccp import write_ccp_layout
from training_runs import (
    run_train,
    single_torch_thread,  # noqa: F401 (autouse fixture: tests run on one thread)
)

from dataset import load_cache
from helpers.checkpoint import load_checkpoint
from helpers.errors import ClothVisionError
from preprocess import preprocess
from trainers.evaluation import evaluate_checkpoint

SIZE = (32, 32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Photos, the seed-0 cache of all 16 and the unet checkpoint trained on it for one epoch."""
    root = tmp_path_factory.mktemp("evaluate")
    raw = write_ccp_layout(root / "raw", count=16, size=SIZE)
    cache_dir = preprocess(raw, root / "cache", size=SIZE, workers=1)
    run_train(model="unet", data=cache_dir, out=root / "results", epochs=1, precision="fp32")
    return raw, cache_dir, root / "results" / "unet.pt"


def test_a_cache_split_with_another_seed_still_scores_the_checkpoints_own_test_images(trained, tmp_path):
    raw, cache_dir, checkpoint = trained
    reseeded = preprocess(raw, tmp_path / "seed1", size=SIZE, seed=1, workers=1)
    own_test = load_checkpoint(checkpoint)["split_ids"]["test"]
    reseeded_meta = load_cache(reseeded).meta
    other_test = [reseeded_meta["ids"][row] for row in reseeded_meta["split"]["test"]]
    assert set(other_test) != set(own_test)  # the seed-1 test split holds other images
    expected = evaluate_checkpoint(checkpoint, cache_dir, "test", device="cpu", precision="fp32")
    got = evaluate_checkpoint(checkpoint, reseeded, "test", device="cpu", precision="fp32")
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["image_ids"] == expected["image_ids"] == sorted(own_test)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert int(np.sum(got["confusion_matrix"])) == len(own_test) * SIZE[0] * SIZE[1]


def test_a_limited_checkpoint_on_the_full_cache_scores_only_its_own_test_images(trained, tmp_path):
    raw, cache_dir, _ = trained
    limited = preprocess(raw, tmp_path / "limited", size=SIZE, limit=10, workers=1)
    run_train(model="unet", data=limited, out=tmp_path / "results", epochs=1, batch_size=2, precision="fp32")
    checkpoint = tmp_path / "results" / "unet.pt"
    own_test = load_checkpoint(checkpoint)["split_ids"]["test"]
    full_meta = load_cache(cache_dir).meta
    full_test = [full_meta["ids"][row] for row in full_meta["split"]["test"]]
    assert set(own_test) != set(full_test)
    on_full = evaluate_checkpoint(checkpoint, cache_dir, "test", device="cpu", precision="fp32")
    on_own = evaluate_checkpoint(checkpoint, limited, "test", device="cpu", precision="fp32")
    assert on_full["confusion_matrix"] == on_own["confusion_matrix"]
    assert int(np.sum(on_full["confusion_matrix"])) == len(own_test) * SIZE[0] * SIZE[1]


def test_a_cache_without_the_checkpoints_images_is_refused_naming_them(trained, tmp_path):
    raw, _, checkpoint = trained
    limited = preprocess(raw, tmp_path / "limited", size=SIZE, limit=4, workers=1)
    limited_ids = set(load_cache(limited).meta["ids"])
    missing = [image_id for image_id in load_checkpoint(checkpoint)["split_ids"]["val"]
               if image_id not in limited_ids]
    assert missing
    with pytest.raises(ClothVisionError, match=rf"lacks {len(missing)} of the .* val images .*{missing[0]}.*"
                                               "preprocess without --limit"):
        evaluate_checkpoint(checkpoint, limited, "val", device="cpu")


def test_a_cache_at_another_image_size_is_refused_with_a_command_that_keeps_it(trained, tmp_path):
    raw, _, checkpoint = trained
    larger = preprocess(raw, tmp_path / "larger", size=(48, 32), workers=1)
    with pytest.raises(ClothVisionError) as refusal:
        evaluate_checkpoint(checkpoint, larger, "test", device="cpu")
    own_size = tmp_path / "larger_32x32"
    assert str(refusal.value) == (
        f"checkpoint {checkpoint} was trained on 32x32 images, cache {larger} holds 48x32: make a cache at that "
        f"size with `python preprocess.py --data {raw} --size 32 32 --out {own_size}`, then evaluate it with "
        f"--data {own_size}")
    with pytest.raises(ClothVisionError, match="unknown split 'holdout'"):
        evaluate_checkpoint(checkpoint, trained[1], "holdout", device="cpu")


def test_a_cache_at_another_image_size_points_to_the_cache_beside_it_at_the_right_size(trained, tmp_path):
    raw, _, checkpoint = trained
    larger = preprocess(raw, tmp_path / "larger", size=(48, 32), workers=1)
    preprocess(raw, tmp_path / "a_subset", size=SIZE, limit=4, workers=1)  # at that size, without its images
    at_size = preprocess(raw, tmp_path / "full_at_32x32", size=SIZE, workers=1)
    with pytest.raises(ClothVisionError, match=rf"holds 48x32: evaluate it with --data {re.escape(str(at_size))}, "
                                               "the cache at that size$"):
        evaluate_checkpoint(checkpoint, larger, "test", device="cpu")
    with pytest.raises(ClothVisionError, match="unknown split 'holdout'"):
        evaluate_checkpoint(checkpoint, trained[1], "holdout", device="cpu")

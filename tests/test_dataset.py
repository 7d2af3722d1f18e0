import json
import pickle
import re

import numpy as np
import pytest
import torch

from dataset import CACHE_FORMAT_VERSION, CustomClothingDataset, DeviceBatchLoader, load_cache
from helpers.errors import ClothVisionError
from preprocess import preprocess, split_rows

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_cache(cache_dir, count=40, size=(6, 5), seed=0):
    """A cache in preprocess.py's format whose random labels identify their row, flipped or not; the
    images' labels at their own size are 9 + row tall and 7 wide."""
    rng = np.random.default_rng(seed)
    cache_dir.mkdir(parents=True)
    np.save(cache_dir / "images.npy", rng.integers(0, 256, size=(count, 3, *size), dtype=np.uint8))
    np.save(cache_dir / "labels.npy", rng.integers(0, 59, size=(count, *size), dtype=np.uint8))
    ids, split = [f"{index:04d}" for index in range(1, count + 1)], split_rows(count, seed=0)
    native = {ids[row]: rng.integers(0, 59, size=(9 + row, 7), dtype=np.uint8) for row in range(count)}
    np.savez_compressed(cache_dir / "native_labels.npz", **native)
    meta = {"format_version": CACHE_FORMAT_VERSION, "source_layout": "ccp", "source_dir": "/nowhere",
            "class_names": [f"class{index}" for index in range(59)],
            "palette": [[index, 0, 0] for index in range(59)], "image_size": list(size),
            "mean": MEAN, "std": STD, "ids": ids, "split": split,
            "split_fractions": [0.7, 0.15, 0.15], "seed": 0, "train_class_pixel_counts": [0] * 59,
            "native_label_shapes": {image_id: list(label.shape) for image_id, label in native.items()}}
    (cache_dir / "meta.json").write_text(json.dumps(meta))
    return cache_dir


@pytest.fixture
def cache(tmp_path):
    return load_cache(write_cache(tmp_path / "cache"))


def normalised(images: np.ndarray) -> np.ndarray:
    mean, std = np.array(MEAN).reshape(3, 1, 1), np.array(STD).reshape(3, 1, 1)
    return (images.astype(np.float64) / 255 - mean) / std


def identify(cache, labels: torch.Tensor) -> list[tuple[int, bool]]:
    """(row, flipped) of every label in a batch."""
    found = []
    for label in labels.cpu().numpy():
        matches = [(row, flipped) for row in range(len(cache.labels)) for flipped in (False, True)
                   if np.array_equal(cache.labels[row][:, ::-1] if flipped else cache.labels[row], label)]
        assert len(matches) == 1
        found.append(matches[0])
    return found


def seen_rows(loader, cache) -> list[int]:
    return [row for _, labels in loader for row, _ in identify(cache, labels)]


def test_cache_written_by_preprocess_loads_memory_mapped(ccp_synthetic, tmp_path):
    cache = load_cache(preprocess(ccp_synthetic, tmp_path / "cache", size=(20, 14), workers=1))
    assert isinstance(cache.images, np.memmap) and not cache.images.flags.writeable
    assert cache.images.shape == (6, 3, 20, 14) and cache.labels.shape == (6, 20, 14)
    assert cache.class_names[0] == "null" and len(cache.class_names) == 59
    np.testing.assert_array_equal(cache.split_indices("val"), cache.meta["split"]["val"])
    assert cache.cache_dir == tmp_path / "cache"
    with pytest.raises(ClothVisionError, match="unknown split 'validation'"):
        cache.split_indices("validation")


def test_missing_cache_says_to_run_preprocess(tmp_path):
    with pytest.raises(ClothVisionError, match=r"no cache at .*nowhere: run `python preprocess.py` first"):
        load_cache(tmp_path / "nowhere")


@pytest.mark.parametrize("layout", ["ccp_synthetic", "kaggle_synthetic"])
def test_a_dataset_folder_given_as_the_cache_says_which_command_makes_its_cache(layout, request):
    dataset_dir = request.getfixturevalue(layout)
    message = (f"{dataset_dir} is a dataset folder, not a cache: make its cache with `python preprocess.py --data "
               f"{dataset_dir} --out {dataset_dir / 'processed'}`, then pass --data {dataset_dir / 'processed'}")
    with pytest.raises(ClothVisionError) as error:
        load_cache(dataset_dir)
    assert str(error.value) == message


def test_a_cache_given_as_the_dataset_says_to_train_on_it(ccp_synthetic, tmp_path):
    cache_dir = preprocess(ccp_synthetic, tmp_path / "cache", size=(8, 6), workers=1)
    with pytest.raises(ClothVisionError, match=r"data folder .*cache is a preprocess.py cache, not a dataset: train "
                                               r"on it with `python train.py --data .*cache`"):
        preprocess(cache_dir, tmp_path / "again", size=(8, 6), workers=1)


def test_cache_from_before_native_labels_says_to_rerun_preprocess(tmp_path):
    # Version 1 caches had no labels at their own size.
    cache_dir = write_cache(tmp_path / "cache")
    (cache_dir / "native_labels.npz").unlink()
    meta = json.loads((cache_dir / "meta.json").read_text())
    del meta["native_label_shapes"]
    (cache_dir / "meta.json").write_text(json.dumps({**meta, "format_version": 1}))
    expected = (f"cache {cache_dir} has format version 1, this code reads version 2: "
                f"rerun `python preprocess.py --out {cache_dir} --data /nowhere --size 6 5 --limit 40`")
    with pytest.raises(ClothVisionError) as raised:
        load_cache(cache_dir)
    assert str(raised.value) == expected


def test_native_labels_are_read_in_split_order_with_their_own_shapes(cache):
    for split in ("val", "test"):
        labels = cache.native_labels(split)
        rows = cache.split_indices(split)
        assert [label.shape for label in labels] == [(9 + row, 7) for row in rows]
        assert all(label.dtype == np.uint8 for label in labels)
    with np.load(cache.cache_dir / "native_labels.npz") as archive:
        np.testing.assert_array_equal(cache.native_labels("test")[2], archive[cache.meta["ids"][rows[2]]])
    assert [label.shape for label in cache.native_labels("train")] == [(9 + row, 7)
                                                                        for row in cache.split_indices("train")]


@pytest.mark.parametrize("damage", [
    lambda cache_dir: (cache_dir / "meta.json").write_text("{ not json"),
    lambda cache_dir: (cache_dir / "images.npy").unlink(),
    lambda cache_dir: (cache_dir / "meta.json").write_text('{"format_version": 1, "ids": []}'),
    lambda cache_dir: np.save(cache_dir / "labels.npy", np.zeros((40, 6, 4), dtype=np.uint8)),
    lambda cache_dir: np.save(cache_dir / "labels.npy", np.array([{"pickled": 1}] * 40), allow_pickle=True),
    lambda cache_dir: (cache_dir / "native_labels.npz").unlink(),
])
def test_damaged_cache_says_to_rerun_preprocess(tmp_path, damage):
    cache_dir = write_cache(tmp_path / "cache")
    damage(cache_dir)
    with pytest.raises(ClothVisionError, match="rerun `python preprocess.py --out") as raised:
        load_cache(cache_dir)
    assert "\n" not in str(raised.value)


def replace_meta(cache_dir, **changes):
    meta = json.loads((cache_dir / "meta.json").read_text())
    (cache_dir / "meta.json").write_text(json.dumps({**meta, **changes}))


def replace_native_label(cache_dir, value):
    """Every label at its own size becomes one of the same shape holding only class index value."""
    with np.load(cache_dir / "native_labels.npz") as archive:
        labels = {image_id: np.full_like(archive[image_id], value) for image_id in archive.files}
    np.savez_compressed(cache_dir / "native_labels.npz", **labels)


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda cache_dir: (cache_dir / "native_labels.npz").write_bytes(b"PK\x03\x04 truncated"), "corrupt"),
    (lambda cache_dir: np.savez_compressed(cache_dir / "native_labels.npz", other=np.zeros(1, np.uint8)), "corrupt"),
    (lambda cache_dir: replace_meta(cache_dir, native_label_shapes={}), "describes a uint8 label of shape ()"),
    (lambda cache_dir: replace_native_label(cache_dir, 200), "with class index 200"),
])
def test_damaged_native_labels_say_to_rerun_preprocess(tmp_path, damage, problem):
    cache_dir = write_cache(tmp_path / "cache")
    damage(cache_dir)
    # The labels at their own size are read only when asked for, so the cache still opens.
    cache = load_cache(cache_dir)
    with pytest.raises(ClothVisionError, match=f"{re.escape(problem)}.*rerun `python preprocess.py --out") as raised:
        cache.native_labels("val")
    assert "\n" not in str(raised.value) and str(cache_dir / "native_labels.npz") in str(raised.value)


def test_dataset_items_are_normalised_images_and_long_labels(cache):
    dataset = CustomClothingDataset(cache.cache_dir, split="test")
    rows = cache.split_indices("test")
    assert len(dataset) == 6 and dataset.ids == [f"{row + 1:04d}" for row in rows]
    assert dataset.class_names == cache.class_names
    image, label = dataset[2]
    assert image.dtype == torch.float32 and image.shape == (3, 6, 5)
    assert label.dtype == torch.int64 and label.shape == (6, 5)
    np.testing.assert_allclose(image.numpy(), normalised(cache.images[rows[2]]), atol=1e-5)
    np.testing.assert_array_equal(label.numpy(), cache.labels[rows[2]])


def test_dataset_augment_flips_image_and_label_together(cache):
    dataset = CustomClothingDataset(cache, split="train", augment=True)
    torch.manual_seed(0)
    flips = []
    for _ in range(40):
        image, label = dataset[0]
        ((row, flipped),) = identify(cache, label[None])
        assert row == cache.split_indices("train")[0]
        expected = cache.images[row][..., ::-1] if flipped else cache.images[row]
        np.testing.assert_allclose(image.numpy(), normalised(expected), atol=1e-5)
        flips.append(flipped)
    assert 5 < sum(flips) < 35


def test_dataset_pickles_by_folder_for_spawned_workers(cache):
    dataset = CustomClothingDataset(cache.cache_dir, split="val")
    payload = pickle.dumps(dataset)
    assert len(payload) < 10_000
    copy = pickle.loads(payload)
    np.testing.assert_array_equal(copy[1][1].numpy(), dataset[1][1].numpy())


def test_evaluation_loader_yields_the_split_in_order_normalised(cache):
    loader = DeviceBatchLoader(cache, "train", batch_size=8, device="cpu")
    rows = cache.split_indices("train")
    assert len(loader) == 4 and loader.num_samples == 28
    batches = list(loader)
    assert [len(images) for images, _ in batches] == [8, 8, 8, 4]
    images = torch.cat([images for images, _ in batches])
    labels = torch.cat([labels for _, labels in batches])
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    np.testing.assert_allclose(images.numpy(), normalised(cache.images[rows]), atol=1e-5)
    np.testing.assert_array_equal(labels.numpy(), cache.labels[rows])
    assert loader.ids == [cache.meta["ids"][row] for row in rows]


def test_shuffled_order_depends_on_seed_and_epoch_only(cache):
    loader = DeviceBatchLoader(cache, "train", batch_size=5, device="cpu", shuffle=True, seed=3)
    train_rows = sorted(cache.split_indices("train").tolist())
    epoch_orders = []
    for epoch in (0, 1, 0):
        loader.set_epoch(epoch)
        order = seen_rows(loader, cache)
        assert sorted(order) == train_rows
        epoch_orders.append(order)
    assert epoch_orders[0] == epoch_orders[2] != epoch_orders[1]
    assert epoch_orders[0] != train_rows
    other_seed = DeviceBatchLoader(cache, "train", batch_size=5, device="cpu", shuffle=True, seed=4)
    assert seen_rows(other_seed, cache) != epoch_orders[0]


def test_evaluation_shards_see_every_sample_exactly_once(cache):
    shards = [DeviceBatchLoader(cache, "train", batch_size=4, device="cpu", rank=rank, world_size=3)
              for rank in range(3)]
    assert [shard.num_samples for shard in shards] == [10, 9, 9]
    seen = [row for shard in shards for row in seen_rows(shard, cache)]
    assert sorted(seen) == sorted(cache.split_indices("train").tolist())


def test_training_shards_have_equal_batch_counts_and_share_one_permutation(cache):
    shards = [DeviceBatchLoader(cache, "train", batch_size=4, device="cpu", shuffle=True, seed=1, rank=rank,
                                world_size=3) for rank in range(3)]
    for shard in shards:
        shard.set_epoch(5)
    assert [len(shard) for shard in shards] == [3, 3, 3]
    assert [shard.num_samples for shard in shards] == [10, 10, 10]
    per_rank = [seen_rows(shard, cache) for shard in shards]
    interleaved = [per_rank[index % 3][index // 3] for index in range(30)]
    train_rows = sorted(cache.split_indices("train").tolist())
    # 28 samples padded to 30 by repeating the first two of the shared permutation.
    assert sorted(interleaved[:28]) == train_rows and interleaved[28:] == interleaved[:2]


def test_drop_last_leaves_out_the_partial_batch(cache):
    loader = DeviceBatchLoader(cache, "train", batch_size=8, device="cpu", shuffle=True, drop_last=True)
    assert len(loader) == 3
    assert [len(labels) for _, labels in loader] == [8, 8, 8]


def test_augment_flips_image_and_label_of_the_same_samples(cache):
    loader = DeviceBatchLoader(cache, "train", batch_size=8, device="cpu", shuffle=True, augment="flip", seed=2)
    flips = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        for images, labels in loader:
            for image, (row, flipped) in zip(images.numpy(), identify(cache, labels), strict=True):
                expected = cache.images[row][..., ::-1] if flipped else cache.images[row]
                np.testing.assert_allclose(image, normalised(expected), atol=1e-5)
                flips.append(flipped)
    assert 20 < sum(flips) < 64
    loader.set_epoch(0)
    first = [flipped for _, labels in loader for _, flipped in identify(cache, labels)]
    assert first == flips[:28]


def test_flips_are_not_drawn_from_the_stream_that_shuffles(cache):
    """The order's generator, started afresh, must not also give the flips: they would be a function of the
    permutation draws (NumPy pads seeds with zeros, so (seed, epoch) and (seed, epoch, rank 0) coincide)."""
    loader = DeviceBatchLoader(cache, "train", batch_size=8, device="cpu", shuffle=True, augment="flip", seed=2)
    loader.set_epoch(3)
    order_stream = np.random.default_rng([2, 3])
    order = order_stream.permutation(len(loader.ids))
    seen = [found for _, labels in loader for found in identify(cache, labels)]
    assert [row for row, _ in seen] == cache.split_indices("train")[order].tolist()
    flips_from_the_order_stream = (np.random.default_rng([2, 3]).random(len(seen)) < 0.5).tolist()
    assert [flipped for _, flipped in seen] != flips_from_the_order_stream


def test_loader_arguments_are_checked(cache):
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        DeviceBatchLoader(cache, "val", batch_size=2, device="cpu", rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceBatchLoader(cache, "val", batch_size=0, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loader_holds_the_split_on_the_gpu_and_matches_the_cpu(cache):
    cpu = DeviceBatchLoader(cache, "train", batch_size=8, device="cpu", shuffle=True, augment="flip")
    gpu = DeviceBatchLoader(cache, "train", batch_size=8, device="cuda", shuffle=True, augment="flip")
    assert gpu.images.is_cuda and gpu.images.dtype == torch.uint8
    for (cpu_images, cpu_labels), (gpu_images, gpu_labels) in zip(cpu, gpu, strict=True):
        assert gpu_images.is_cuda and gpu_labels.is_cuda
        torch.testing.assert_close(gpu_images.cpu(), cpu_images)
        torch.testing.assert_close(gpu_labels.cpu(), cpu_labels)

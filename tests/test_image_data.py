import gzip

import numpy as np
import pytest
from image_fixtures import write_cifar10, write_idx_dataset

from zoo_train.data.errors import DataError
from zoo_train.data.images import load_image_arrays, read_idx, write_idx


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_known_bytes(tmp_path):
    # Header of an MNIST label file: magic 0x00000801, count 3, then the bytes.
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 9]))
    np.testing.assert_array_equal(read_idx(path), [5, 0, 9])


def test_idx_truncated_and_foreign_files_are_refused(tmp_path):
    good = tmp_path / "x.idx"
    write_idx(good, np.zeros((4, 5, 5), np.uint8))
    truncated = tmp_path / "t.idx"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"t\.idx: IDX file is truncated"):
        read_idx(truncated)
    foreign = tmp_path / "f.idx.gz"
    with gzip.open(foreign, "wb") as f:
        f.write(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match=r"f\.idx\.gz: not an IDX file"):
        read_idx(foreign)


def test_fashion_mnist_folder_through_data_dir(tmp_path):
    write_idx_dataset(tmp_path / "fashion-mnist", n_train=50, n_test=20)
    arrays = load_image_arrays("fashion-mnist", tmp_path)
    assert arrays.train_images.shape == (50, 28, 28, 1) and arrays.test_images.shape == (20, 28, 28, 1)
    assert arrays.labels[0] == "T-shirt/top" and arrays.train_labels.dtype == np.int64
    assert arrays.source == str(tmp_path / "fashion-mnist")


def test_cifar10_pickles_read_through_torchvision(tmp_path, monkeypatch):
    # torchvision checks the md5 of the real release files; tiny generated pickles cannot match them.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    write_cifar10(tmp_path, n_per_batch=8)
    arrays = load_image_arrays("cifar10", tmp_path)
    assert arrays.train_images.shape == (40, 32, 32, 3) and arrays.test_images.shape == (8, 32, 32, 3)
    assert arrays.labels[:2] == ["airplane", "automobile"]


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("zoo_train.data.paths.SYSTEM_DATA_DIRS", ())
    with pytest.raises(DataError) as err:
        load_image_arrays("cifar100", tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "zoo-data fetch" in message
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_image_arrays("fashion-mnist", tmp_path / "nowhere")


def test_batch_augmentation_keeps_shape_and_range():
    import torch

    from zoo_train.data.augment import augment_batch
    from zoo_train.data.images import Augmentation

    torch.manual_seed(0)
    x = torch.rand(16, 3, 12, 10)
    assert torch.equal(augment_batch(x, Augmentation()), x)
    out = augment_batch(x, Augmentation(flip=True, translate=2, rotate=10, brightness=0.2, contrast=0.2, erase=0.5))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_random_erasing_replaces_one_rectangle_per_chosen_image():
    import torch

    from zoo_train.data.augment import erase_rectangles

    torch.manual_seed(0)
    x = torch.full((64, 2, 20, 16), -1.0)  # noise is in 0..1, so every erased pixel is visible
    assert torch.equal(erase_rectangles(x, 0.0), x)
    out = erase_rectangles(x, 1.0)
    changed = out != x
    assert torch.equal(changed[:, 0], changed[:, 1]), "the same rectangle in every channel"
    for mask in changed[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert len(rows) and len(cols)
        # A filled axis-aligned rectangle: its bounding box is all changed, nothing outside it.
        box = torch.zeros_like(mask)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(mask, box)
        assert mask.sum() <= 0.4 * 20 * 16 * 1.3  # the largest drawn area, give or take rounding
    erased = erase_rectangles(x, 0.5)
    share = (erased != x).flatten(1).any(1).float().mean().item()
    assert 0.3 < share < 0.7


def test_recipe_random_erasing_reaches_the_training_transform(tmp_path):
    from zoo_train.registry import get_entry
    from zoo_train.tasks.base import get_task

    write_idx_dataset(tmp_path / "fashion-mnist", n_train=40, n_test=10)
    entry = get_entry("simple-cnn")
    recipe = entry.recipes["smoke"].replace(random_erasing=0.5)
    data = get_task(entry.task).load_data(entry, recipe, "fashion-mnist", tmp_path, seed=0)
    assert data.batch_transform.augmentation.erase == 0.5
    assert data.batch_transform.augmentation.flip  # the dataset's own augmentation is kept

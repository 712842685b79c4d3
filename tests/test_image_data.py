import gzip

import numpy as np
import pytest

from image_fixtures import write_cifar10, write_idx_dataset
from zoo_train.data.images import load_image_arrays, read_idx, write_idx
from zoo_train.data.errors import DataError


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
    with pytest.raises(DataError, match="t.idx: IDX file is truncated"):
        read_idx(truncated)
    foreign = tmp_path / "f.idx.gz"
    with gzip.open(foreign, "wb") as f:
        f.write(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match="f.idx.gz: not an IDX file"):
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

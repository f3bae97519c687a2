"""On-device batching: permutations, fixed shapes, exact masks; normalisation and splits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import data as D

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


def test_dropped_remainder_gives_full_distinct_batches():
    idx, mask = D.epoch_indices(jax.random.key(0), 103, 10)
    assert idx.shape == (10, 10) and bool(mask.all())
    flat = np.asarray(idx).ravel()
    assert len(set(flat.tolist())) == 100 and flat.max() < 103


def test_masked_remainder_counts_every_example_exactly_once():
    idx, mask = D.epoch_indices(jax.random.key(1), 103, 10, drop_remainder=False)
    assert idx.shape == (11, 10)
    real = np.asarray(idx)[np.asarray(mask)]
    assert sorted(real.tolist()) == list(range(103))
    values = jnp.arange(103.0)
    batch_means = jax.vmap(lambda i, m: D.masked_mean(values[i], m))(idx, mask)
    weights = mask.sum(axis=1)
    assert float((batch_means * weights).sum() / weights.sum()) == pytest.approx(51.0)


@pytest.mark.parametrize("n", [1, 5, 12, 15])
def test_a_batch_larger_than_the_data_set_pads_and_masks(n):
    idx, mask = D.epoch_indices(jax.random.key(3), n, 32, drop_remainder=False)  # evaluating 12 images by 32
    assert idx.shape == mask.shape == (1, 32) and int(mask.sum()) == n
    assert sorted(np.asarray(idx)[np.asarray(mask)].tolist()) == list(range(n))
    assert int(np.asarray(idx).max()) < n  # the padding repeats real rows


def test_epochs_differ_and_shapes_do_not_recompile():
    key = jax.random.key(2)
    first = D.epoch_indices(jax.random.fold_in(key, 0), 50, 8)[0]
    before = D.epoch_indices._cache_size()
    second = D.epoch_indices(jax.random.fold_in(key, 1), 50, 8)[0]
    assert D.epoch_indices._cache_size() == before  # a new key is not a new compilation
    assert not np.array_equal(first, second)
    ordered = D.epoch_indices(key, 50, 8, shuffle=False)[0]
    np.testing.assert_array_equal(np.asarray(ordered).ravel(), np.arange(48))


def test_normalisations_match_the_tutorials():
    pixels = np.array([0, 128, 255], np.uint8)
    np.testing.assert_allclose(D.normalize(pixels, "unit"), [0, 128 / 255, 1], atol=1e-6)
    np.testing.assert_allclose(D.normalize(pixels, "symmetric"), [-1, 2 * 128 / 255 - 1, 1], atol=1e-6)
    with pytest.raises(ValueError, match="unknown normalization"):
        D.normalize(pixels, "imagenet")


def test_train_val_split_is_a_disjoint_cover():
    ds = D.load("digits", "train")
    train, val = D.train_val_split(ds, 0.2, seed=3)
    assert (len(train), len(val)) == (1150, 287)
    assert (train.split, val.split) == ("train", "val")
    rows = {r.tobytes() for r in np.concatenate([train.inputs, val.inputs]).reshape(len(ds), -1)}
    assert rows == {r.tobytes() for r in ds.inputs.reshape(len(ds), -1)}
    again = D.train_val_split(ds, 287, seed=3)[1]
    np.testing.assert_array_equal(again.labels, val.labels)
    with pytest.raises(ValueError, match="non-empty"):
        D.train_val_split(ds, 0)


def test_generate_mini_batches_follows_the_numpy_tutorial():
    X = np.arange(2 * 10).reshape(2, 10)
    Y = (np.arange(10) % 2).reshape(1, 10)
    batches = D.generate_mini_batches(X, Y, batch_size=4, seed=5)
    np.random.seed(5)  # the tutorial's own recipe, for comparison
    permutation = list(np.random.permutation(10))
    assert len(batches) == 2  # complete batches only, as in the tutorial
    np.testing.assert_array_equal(batches[1][0], X[:, permutation][:, 4:8])
    np.testing.assert_array_equal(batches[0][1], Y[:, permutation][:, :4])
    with_rest = D.generate_mini_batches(X, Y, batch_size=4, seed=5, drop_remainder=False)
    assert [b[0].shape[1] for b in with_rest] == [4, 4, 2]

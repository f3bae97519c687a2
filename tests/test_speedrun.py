"""cifar10-speedrun's pieces: the whitening layer, the identity initialisation, test-time augmentation,
the optimizer's bias group, the augmentations, and the time-to-target bookkeeping."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.experiments import cifar10_speedrun as speedrun
from jaxdl.experiments.settings import SpeedrunConfig
from jaxdl.models.speedrun import SpeedrunNet, dirac_kernel, max_pool_2x2, patches, whitening_filters
from jaxdl.train.fit import EpochEnd

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


def test_whitening_filters_make_the_patches_uncorrelated_with_unit_variance():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
    images[..., 1] += 0.8 * images[..., 0]  # correlated channels, and neighbouring pixels alike:
    images[:, 1:] += 0.5 * images[:, :-1]
    filters = np.array(whitening_filters(images, eps=0.0)).reshape(12, 24)
    np.testing.assert_allclose(filters[:, 12:], -filters[:, :12])  # each filter and its negation
    flat = np.asarray(patches(jnp.asarray(images), 1), np.float64).reshape(-1, 12)
    white = flat @ filters[:, :12]
    np.testing.assert_allclose(white.T @ white / len(white), np.eye(12), atol=1e-4)
    variances = np.diag(flat.T @ flat / len(flat))
    assert variances.max() > 1.5  # the input was not white to begin with


def test_patches_at_stride_two_tile_the_image():
    images = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
    tiles = patches(images, 2)
    assert tiles.shape == (2, 2, 2, 12)
    np.testing.assert_array_equal(tiles[1, 1, 0].reshape(2, 2, 3), images[1, 2:4, 0:2])


def test_max_pool_by_reshape_is_flax_max_pool_with_its_gradient():
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))
    grads = [
        jax.grad(lambda x, f=f: jnp.sum(jnp.sin(f(x))))(x)
        for f in (max_pool_2x2, lambda x: nn.max_pool(x, (2, 2), (2, 2)))
    ]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


def test_dirac_kernel_starts_as_the_identity_on_the_first_channels():
    kernel = dirac_kernel(jax.random.key(0), (3, 3, 4, 6))
    x = jax.random.normal(jax.random.key(1), (1, 5, 5, 4))
    out = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(out[..., :4], x, atol=1e-6)
    assert float(jnp.abs(kernel[..., 4:]).max()) > 0  # the other filters keep PyTorch's random start


def test_evaluation_averages_each_image_and_its_mirror_image():
    x = jax.random.normal(jax.random.key(0), (3, 32, 32, 3))
    net = SpeedrunNet(widths=(4, 8, 8))
    variables = jax.jit(net.init)(jax.random.key(1), x)  # jitted: one program each, not one per operation
    plain = jax.jit(SpeedrunNet(widths=(4, 8, 8), tta=False).apply)
    expected = (plain(variables, x) + plain(variables, x[:, :, ::-1])) / 2
    np.testing.assert_allclose(jax.jit(net.apply)(variables, x), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain(variables, x), expected, atol=1e-4)  # the mirror image changes the logits


def test_the_optimizer_moves_batch_norm_biases_bias_scaler_times_faster():
    config = SpeedrunConfig(bias_scaler=64.0, weight_decay=0.0, schedule="constant")
    params = {"norm1a": {"bias": jnp.zeros(3)}, "conv1a": jnp.zeros(3)}
    tx = speedrun.speedrun_optimizer(config, steps_per_epoch=10)
    grads = {"norm1a": {"bias": jnp.ones(3)}, "conv1a": jnp.ones(3)}
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["norm1a"]["bias"], 64.0 * updates["conv1a"], rtol=1e-6)
    # airbench's decoupled rate: lr / (1024 (1 + 1 / (1 - momentum))) per example, times the batch;
    # Nesterov's first step is (1 + momentum) times the gradient
    lr = config.lr / (1024 * (1 + 1 / (1 - config.momentum))) * config.batch_size
    np.testing.assert_allclose(updates["conv1a"], -lr * (1 + config.momentum), rtol=1e-6)


def test_the_triangle_schedule_rises_to_one_and_falls_to_its_end():
    schedule = speedrun.triangle(100)
    assert float(schedule(0)) == pytest.approx(0.2)
    assert float(schedule(23)) == pytest.approx(1.0)
    assert float(schedule(100)) == pytest.approx(0.07)


def test_shift_and_flip_move_pixels_and_keep_them():
    images = jax.random.uniform(jax.random.key(0), (16, 8, 8, 3))
    flipped = speedrun.shift_and_flip(images, jax.random.key(1), translate=0, flip=True)
    mirrored = [bool(jnp.array_equal(f, i[:, ::-1])) for f, i in zip(flipped, images, strict=True)]
    kept = [bool(jnp.array_equal(f, i)) for f, i in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)
    shifted = speedrun.shift_and_flip(images, jax.random.key(2), translate=2, flip=False)
    # the centre 4x4 of a shift by at most 2 lies within the image: found at some offset
    for s, i in zip(shifted, images, strict=True):
        assert any(bool(jnp.array_equal(s[2:6, 2:6], i[2 + dy : 6 + dy, 2 + dx : 6 + dx]))
                   for dy in range(-2, 3) for dx in range(-2, 3))  # fmt: skip


def _end(epoch, record):
    return EpochEnd(epoch, None, record, np.ones(len(record.get("replicas", {}).get("val_accuracy", [0])), bool))


def test_training_stops_once_every_seed_reaches_the_target():
    hook = speedrun.StopAtTarget(0.75)
    one = _end(1, {"val_accuracy": 0.74})
    hook.after_epoch(one)
    assert one.active.all()
    both = _end(2, {"val_accuracy": 0.8, "replicas": {"val_accuracy": [0.76, 0.74]}})
    hook.after_epoch(both)
    assert both.active.all()  # one seed short
    both = _end(3, {"val_accuracy": 0.8, "replicas": {"val_accuracy": [0.76, 0.75]}})
    hook.after_epoch(both)
    assert not both.active.any()


def test_seconds_to_target_charge_each_seed_its_share_of_the_program():
    history = [
        {"seconds": 10.0, "val_accuracy": 0.7, "replicas": {"val_accuracy": [0.70, 0.76]}},
        {"seconds": 12.0, "val_accuracy": 0.8, "replicas": {"val_accuracy": [0.78, 0.80]}},
    ]
    assert speedrun.seconds_to_target(history, 0.75) == [11.0, 5.0]
    assert speedrun.seconds_to_target(history, 0.79) == [None, 11.0]
    assert speedrun.seconds_to_target([{"seconds": 3.0, "val_accuracy": 0.9}], 0.75) == [3.0]


def test_stride_one_is_airbench94s_network_on_the_whole_image():
    assert patches(jnp.zeros((1, 32, 32, 3)), 1).shape == (1, 31, 31, 12)
    model = SpeedrunNet(whitening=tuple(np.zeros(12 * 24).tolist()), stride=1, widths=(64, 256, 256))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3))))
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 1_971_352  # the whitening filters are constants
    assert jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 32, 32, 3))), variables).shape == (2, 10)


def test_the_network_under_grad_jvp_and_vmap_forward_equals_reverse_and_batched_equals_single():
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    whitening = whitening_filters(np.asarray(x))
    net = SpeedrunNet(whitening=whitening, widths=(4, 8, 8), conv="xla")
    # each transformation jitted: one program each, not one per operation
    variables = jax.jit(net.init)(jax.random.key(1), x)
    params, stats = variables["params"], {"batch_stats": variables["batch_stats"]}

    def loss(p):  # evaluation mode: running statistics, both TTA views
        return jnp.sum(net.apply({"params": p, **stats}, x) ** 2)

    tangent = jax.jit(lambda p: jax.tree.map(lambda a: jax.random.normal(jax.random.key(2), a.shape), p))(params)
    _, forward = jax.jit(lambda p, t: jax.jvp(loss, (p,), (t,)))(params, tangent)
    grads = jax.jit(jax.grad(loss))(params)
    reverse = sum(np.vdot(g, t) for g, t in zip(jax.tree.leaves(grads), jax.tree.leaves(tangent), strict=True))
    np.testing.assert_allclose(forward, reverse, rtol=1e-4)
    assert abs(forward) > 1e-3  # a direction the loss moves along
    batched = jax.jit(jax.vmap(lambda image: net.apply(variables, image[None])[0]))(x)
    np.testing.assert_allclose(batched, jax.jit(net.apply)(variables, x), rtol=1e-5, atol=1e-6)

"""The tutorials' networks: output shapes, exact parameter counts, the convolution, the VAE."""

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models import CNN, MLP, VAE, Conv3x3, SmallMLP, count_params, reparameterize, vae_loss
from jaxdl.models.classifiers import conv3x3

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1), "sample": jax.random.key(2)}


@pytest.mark.parametrize(
    "model, shape, params",
    [
        (MLP(), (3, 32, 32, 3), 3072 * 100 + 100 + 100 * 10 + 10),  # 308,310
        (MLP(hidden=200), (3, 32, 32, 3), 3072 * 200 + 200 + 200 * 10 + 10),
        (SmallMLP(), (3, 28, 28, 1), 784 * 128 + 128 + 128 * 10 + 10),  # 101,770
        (CNN(), (3, 32, 32, 3), 591_914),  # PyTorch's count for the tutorial's CNN
    ],
)
def test_classifier_shapes_and_parameter_counts(model, shape, params):
    variables = jax.jit(model.init)(RNGS, jnp.ones(shape))
    assert count_params(variables["params"]) == params
    assert jax.jit(model.apply)(variables, jnp.ones(shape)).shape == (3, 10)


def test_cnn_batch_norm_statistics_and_dropout():
    model = CNN()
    x = jax.random.normal(jax.random.key(3), (8, 32, 32, 3))
    variables = jax.jit(model.init)(RNGS, x)
    assert set(variables["batch_stats"]) == {"bn1", "bn2", "bn3", "bn4", "bn5"}
    # each pass jitted: one program, not one per operation
    train = jax.jit(lambda v, x, key: model.apply(v, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]))
    _, updates = train(variables, x, jax.random.key(4))
    # PyTorch's momentum 0.1: running = 0.9 * running + 0.1 * batch statistic.
    conv = jax.jit(Conv3x3(32).apply)({"params": variables["params"]["conv1"]}, x)
    np.testing.assert_allclose(updates["batch_stats"]["bn1"]["mean"], 0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    a, b = train(variables, x, jax.random.key(5))[0], train(variables, x, jax.random.key(6))[0]
    assert not np.allclose(a, b)  # dropout draws from its key
    evaluate = jax.jit(model.apply)
    # evaluation takes no dropout key and draws none: two passes agree exactly
    np.testing.assert_array_equal(evaluate(variables, x), evaluate(variables, x))


def test_batch_norm_of_groups_is_batch_norm_of_their_concatenation(x64):
    from jaxdl.functional.normalization import batch_normalize

    groups = [jax.random.normal(jax.random.key(i), (n, 3, 4), jnp.float64) * (i + 1) for i, n in enumerate((5, 2))]
    scale, bias = jnp.array([1.0, 2.0, -0.5, 3.0]), jnp.array([0.1, 0.0, 0.2, -1.0])
    tangents = [jnp.cos(g) for g in groups], jnp.ones(4), jnp.arange(4.0)

    def whole(groups, scale, bias):
        y = batch_normalize(jnp.concatenate(groups), scale, bias)
        return jnp.split(y, [len(groups[0])])

    def grouped(groups, scale, bias):
        return batch_normalize(groups, scale, bias)

    def loss(f):
        return jax.grad(lambda *args: sum(jnp.sum(jnp.sin(y)) for y in f(*args)), (0, 1, 2))

    primals = (groups, scale, bias)
    results = (lambda f, p, t: f(*p), lambda f, p, t: jax.jvp(f, p, t), lambda f, p, t: loss(f)(*p))
    for result in results:  # each jitted, the arrays as arguments: one program, not one per operation
        computed = [jax.jit(functools.partial(result, f))(primals, tangents) for f in (grouped, whole)]
        chex.assert_trees_all_close(tuple(computed[0]), tuple(computed[1]), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="same number of features"):
        batch_normalize([groups[0], groups[1][..., :3]], scale, bias)


@pytest.mark.slow
def test_cnn_in_batch_groups_computes_what_it_computes_on_the_whole_batch(x64):
    # 5 images in 2 groups of 3 and 2: values, statistics, both derivative modes, and the evaluation pass
    assert jax.default_backend() == "cpu" and CNN().groups() == 2
    x = jax.random.normal(jax.random.key(0), (5, 32, 32, 3), jnp.float64)
    variables = jax.tree.map(lambda v: v.astype(jnp.float64), jax.jit(CNN(batch_groups=1).init)(RNGS, x))
    tangent = jax.tree.map(jnp.cos, variables["params"])
    results = []
    for model in (CNN(batch_groups=1), CNN(batch_groups=2)):

        @jax.jit
        def everything(params, variables, x, tangent, model=model):
            def train(params):
                return model.apply({**variables, "params": params}, x, train=True,
                                   rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])  # fmt: skip

            loss = lambda p: jnp.sum(jnp.tanh(train(p)[0]))  # noqa: E731
            return (
                train(params),
                jax.grad(loss)(params),
                jax.jvp(loss, (params,), (tangent,)),
                model.apply({**variables, "params": params}, x),
            )

        results.append(everything(variables["params"], variables, x, tangent))
    chex.assert_trees_all_close(results[1], results[0], rtol=1e-10, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "impl, stride, size, channels",
    [("im2col", s, size, c) for s in (1, 2, 3, 4) for size in ((9, 9), (8, 5)) for c in (3, 16)]
    + [("winograd", 1, size, c) for size in ((9, 9), (8, 5), (1, 1), (2, 7)) for c in (3, 16)],
)
def test_convolutions_agree_with_xla_in_values_and_both_derivative_modes(impl, stride, size, channels, x64):
    # With 3 channels im2col folds the bias into its product (a column of ones), with 16 it adds it.
    x = jax.random.normal(jax.random.key(0), (2, *size, channels), jnp.float64)
    k = jax.random.normal(jax.random.key(1), (3, 3, channels, 4), jnp.float64)
    b = jax.random.normal(jax.random.key(5), (4,), jnp.float64)
    tangents = tuple(jax.random.normal(jax.random.key(3 + i), a.shape, a.dtype) for i, a in enumerate((x, k, b)))

    @jax.jit  # both implementations in one program, not one program per operation
    def values_and_derivatives(x, k, b, tangents):
        results = {}
        for name in (impl, "xla"):
            conv = functools.partial(lambda x, k, b, name: conv3x3(x, k, stride, name, bias=b), name=name)
            y, pullback = jax.vjp(conv, x, k, b)
            cotangent = jax.random.normal(jax.random.key(2), y.shape, jnp.float64)
            results[name] = (y, pullback(cotangent), jax.jvp(conv, (x, k, b), tangents)[1])
        return results

    results = values_and_derivatives(x, k, b, tangents)
    chex.assert_trees_all_close(results[impl], results["xla"], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(6, 4, 3, 5), (7, 3)])
def test_batch_norm_matches_flax_in_values_statistics_and_every_derivative(shape, x64):
    import flax.linen as nn

    from jaxdl.models.classifiers import BatchNorm

    x = 3 * jax.random.normal(jax.random.key(0), shape, jnp.float64) + 1
    tangent = jnp.cos(x)
    results = []
    for module in (nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5), BatchNorm()):
        variables = jax.jit(module.init)(jax.random.key(1), x)
        params = {k: p + jax.random.uniform(jax.random.key(2), p.shape) for k, p in variables["params"].items()}
        stats = {"batch_stats": jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])}

        @jax.jit  # one program per module, not one per operation
        def everything(params, x, tangent, module=module, stats=stats):
            def train(params, x):
                return module.apply({"params": params, **stats}, x, mutable=["batch_stats"])

            def loss(params, x):
                return jnp.sum(jnp.sin(train(params, x)[0]))

            return (
                train(params, x),
                module.clone(use_running_average=True).apply({"params": params, **stats}, x),
                jax.grad(loss, (0, 1))(params, x),
                jax.jvp(lambda q, x: train(q, x)[0], (params, x), (params, tangent))[1],
                jax.jvp(jax.grad(loss, (0, 1)), (params, x), (params, tangent))[1],  # Hessian-vector product
            )

        results.append(everything(params, x, tangent))
    chex.assert_trees_all_close(results[1], results[0], rtol=1e-12, atol=1e-12)
    chex.assert_trees_all_equal_structs(results[1], results[0])


def test_batch_norm_keeps_flax_dtypes_under_mixed_precision():
    import flax.linen as nn

    from jaxdl.models.classifiers import BatchNorm

    x = jax.random.normal(jax.random.key(0), (8, 4, 4, 3))
    for x_dtype, param_dtype in (("bfloat16", "bfloat16"), ("bfloat16", "float32"), ("float32", "float32")):
        outputs = []
        for module in (nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5), BatchNorm()):
            variables = jax.jit(module.init)(jax.random.key(1), x)
            params = jax.tree.map(lambda p, d=param_dtype: p.astype(d), variables["params"])

            @jax.jit  # one program per module, not one per operation
            def pass_and_gradient(params, inputs, module=module, variables=variables):
                def train(params):
                    return module.apply({**variables, "params": params}, inputs, mutable=["batch_stats"])

                return (*train(params), jax.grad(lambda p: train(p)[0].astype(jnp.float32).sum())(params))

            outputs.append(pass_and_gradient(params, x.astype(x_dtype)))
        chex.assert_trees_all_equal_dtypes(outputs[1], outputs[0])
        chex.assert_trees_all_close(outputs[1], outputs[0], rtol=2e-2, atol=2e-2)


def test_winograd_in_float32_is_as_close_to_float64_as_im2col():
    # Its transforms add and halve: the rounding must stay of im2col's order, not grow with them.
    x = jax.random.normal(jax.random.key(0), (8, 16, 16, 32))
    k = jax.random.normal(jax.random.key(1), (3, 3, 32, 64)) / 17
    with jax.enable_x64(True):
        exact = np.asarray(conv3x3(x.astype(jnp.float64), k.astype(jnp.float64), impl="xla"))
    errors = {impl: np.abs(np.asarray(conv3x3(x, k, impl=impl)) - exact).max() for impl in ("im2col", "winograd")}
    assert errors["winograd"] < 4 * errors["im2col"] + 1e-6, errors
    assert errors["winograd"] < 1e-5 * np.abs(exact).max()


def test_auto_picks_winograd_and_im2col_on_a_cpu_and_unknown_implementations_are_refused():
    assert jax.default_backend() == "cpu"

    def products(x, k, stride=1, impl="auto"):  # (dot_general count, whether XLA's convolution is used)
        jaxpr = str(jax.make_jaxpr(lambda x: conv3x3(x, k, stride, impl))(x))
        return jaxpr.count("dot_general"), "conv_general_dilated" in jaxpr

    wide, k_wide = jnp.ones((1, 4, 4, 16)), jnp.ones((3, 3, 16, 3))
    narrow, k_narrow = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 3))
    assert products(wide, k_wide) == (18, False)  # Winograd: 16 products, and 2 transforming the kernel
    assert products(wide, k_wide, stride=2) == (1, False)  # im2col: one
    assert products(narrow, k_narrow) == (1, False)  # too few channels for Winograd
    assert products(narrow, k_narrow, impl="xla") == (0, True)
    with pytest.raises(ValueError, match="impl must be auto, im2col, winograd or xla"):
        conv3x3(narrow, k_narrow, impl="fft")
    with pytest.raises(ValueError, match="Winograd convolution has stride 1"):
        conv3x3(wide, k_wide, stride=2, impl="winograd")
    for x, k in ((narrow, k_narrow), (wide, k_wide)):  # a bias of the wrong size, folded or added
        with pytest.raises(AssertionError, match="shape"):
            conv3x3(x, k, bias=jnp.ones(1))


@pytest.mark.slow
def test_cnn_takes_uint8_images_as_they_load():
    # A kernel cast to the input's uint8 would be all zeros: the CNN would train at chance.
    images = jax.random.randint(jax.random.key(0), (4, 32, 32, 3), 0, 256).astype(jnp.uint8)
    model = CNN()
    variables = jax.jit(model.init)(RNGS, images)
    apply = jax.jit(model.apply)  # op by op, the Winograd layer's many small operations take half a minute
    np.testing.assert_array_equal(apply(variables, images), apply(variables, images.astype(jnp.float32)))
    grads = jax.jit(jax.grad(lambda p: model.apply({**variables, "params": p}, images).sum()))(variables["params"])
    assert float(jnp.abs(grads["conv1"]["kernel"]).max()) > 0
    with pytest.raises(AssertionError, match="conv3x3|type"):
        conv3x3(images, variables["params"]["conv1"]["kernel"])


@pytest.mark.slow
def test_vae_shapes_loss_and_parameter_count():
    model = VAE()
    image = jax.random.uniform(jax.random.key(0), (4, 784))
    variables = model.init(RNGS, image)
    assert count_params(variables["params"]) == 652_824  # 784-400-(20, 20), 20-400-784
    logits, mean, logvar = model.apply(variables, image, rngs={"sample": jax.random.key(1)})
    assert logits.shape == (4, 784) and mean.shape == logvar.shape == (4, 20)
    losses, terms = vae_loss((logits, mean, logvar), {"inputs": image})
    p = jax.nn.sigmoid(logits)
    bce = -(image * jnp.log(p) + (1 - image) * jnp.log1p(-p)).sum(-1)
    kl = -0.5 * (1 + logvar - mean**2 - jnp.exp(logvar)).sum(-1)  # the tutorial's formula
    np.testing.assert_allclose(losses, bce + kl, rtol=1e-4)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4)


def test_conditional_vae_decodes_a_requested_digit_shape():
    model = VAE(num_classes=10)
    variables = model.init(RNGS, jnp.zeros((3, 784)), jnp.array([1, 2, 3]))
    assert variables["params"]["enc"]["kernel"].shape == (794, 400)
    out = model.apply(variables, jnp.zeros((3, 20)), jnp.array([7, 7, 7]), method=VAE.decode)
    assert out.shape == (3, 784)


def test_reparameterize_draws_from_the_posterior():
    mean, logvar = jnp.full((200_000,), 2.0), jnp.full((200_000,), jnp.log(0.25))
    z = reparameterize(jax.random.key(0), mean, logvar)
    assert float(z.mean()) == pytest.approx(2.0, abs=0.01)
    assert float(z.std()) == pytest.approx(0.5, abs=0.01)
    grads = jax.grad(lambda m: reparameterize(jax.random.key(1), m, logvar).sum())(mean)
    np.testing.assert_array_equal(grads, 1.0)  # the pathwise gradient flows to the mean


def test_this_module_compiles_with_xla_backend_optimisations_off():
    # its pytestmark: tests/conftest.py's xla_backend_at_o0 turns the flag on for the module and its subprocesses
    assert jax.config.read("jax_disable_most_optimizations")
    assert os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "true"

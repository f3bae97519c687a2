"""The tutorials' networks in Flax NNX, twins of the Linen modules beside them.

Flax's documentation now starts new users with NNX. A twin has the Linen
module's layers under the same names, so its state holds the same arrays in
the same tree: :func:`from_linen` loads Linen variables into a twin and
:func:`to_linen` reads them back, and from one initialisation the two compute
the same outputs, gradients and batch-norm updates (``tests/test_nnx.py``).
The maths is shared, not copied: the twins call the same functions as the
Linen modules (:func:`jaxdl.models.blobs.column_dense`,
:func:`jaxdl.models.classifiers.conv3x3`, the batch-norm rule of
:mod:`jaxdl.functional.normalization`, :func:`jaxdl.models.vae.reparameterize`).

NNX keeps jaxdl's premise, pure functions over a parameter pytree:
``graphdef, state = nnx.split(model)`` gives a static graph and a ``State``
pytree, and ``nnx.merge(graphdef, state)`` inside a jitted function makes the
model again. Each ``__call__`` takes ``train`` as the Linen modules do; dropout
draws its masks from the model's own ``nnx.Rngs`` stream (not Linen's keys).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.functional import normalization
from jaxdl.functional.activations import leaky_relu, relu
from jaxdl.functional.init import kernel_init, torch_linear_bias, torch_linear_kernel, zeros
from jaxdl.models.blobs import column_dense
from jaxdl.models.classifiers import CNN as LinenCNN
from jaxdl.models.classifiers import ConvImpl, conv3x3
from jaxdl.models.vae import reparameterize, with_label


class Linear(nnx.Module):
    """``nn.Linear`` (``flax.linen.Dense`` with PyTorch's initialisation): ``x @ kernel + bias``.

    Args:
      fan_in: the input width; the kernel is ``(fan_in, features)`` and PyTorch's bounds scale with it.
      features: the output width; the bias is ``(features,)``.
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws the initial kernel and bias.
    """

    def __init__(self, fan_in: int, features: int, *, rngs: nnx.Rngs):
        self.kernel = nnx.Param(torch_linear_kernel(rngs.params(), (fan_in, features), jnp.float32))
        self.bias = nnx.Param(torch_linear_bias(fan_in)(rngs.params(), (features,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """The affine map over ``x``'s last axis.

        Args:
          x: ``(..., fan_in)`` inputs.

        Returns:
          ``(..., features)``: ``x @ kernel + bias``.
        """
        # the product Flax's Dense computes, contracting x's last axis with the kernel's first
        y = jax.lax.dot_general(x, self.kernel[...], (((x.ndim - 1,), (0,)), ((), ())))
        return y + self.bias[...].reshape((1,) * (y.ndim - 1) + (-1,))


class BatchNorm(nnx.Module):
    """:class:`jaxdl.models.classifiers.BatchNorm`: PyTorch's defaults, statistics over a batch's groups.

    Args:
      features: the number of features (the last axis); scale, bias and the running mean and variance
        are ``(features,)``, starting at ones, zeros, zeros and ones.
      momentum: Flax's convention: the running average keeps this much of its old value each training
        call (PyTorch's momentum 0.1 is 0.9 here).
      epsilon: added to the variance before the square root.
    """

    def __init__(self, features: int, momentum: float = 0.9, epsilon: float = 1e-5):
        self.scale, self.bias = nnx.Param(jnp.ones(features)), nnx.Param(jnp.zeros(features))
        self.mean, self.var = nnx.BatchStat(jnp.zeros(features)), nnx.BatchStat(jnp.ones(features))
        self.momentum, self.epsilon = momentum, epsilon

    def __call__(self, x: jax.Array | list[jax.Array], train: bool) -> jax.Array | list[jax.Array]:
        """Normalises ``x`` over every axis but the last.

        Args:
          x: ``(..., features)`` activations, or a list of arrays that are groups of one batch,
            normalised together by the whole batch's statistics (see :class:`CNN`).
          train: normalise by the batch's statistics and update the running mean and variance in
            place when True; normalise by the running statistics, unchanged, when False.

        Returns:
          The normalised activations, shaped like ``x`` (a list for a list).
        """
        scale, bias = self.scale[...], self.bias[...]
        if not train:
            statistics = self.mean[...], self.var[...]
            return normalization.map_groups(
                x, lambda g: normalization.normalize(g, *statistics, scale, bias, self.epsilon)
            )
        mean, var = jax.lax.stop_gradient(normalization.batch_statistics(x))
        self.mean[...] = self.momentum * self.mean[...] + (1 - self.momentum) * mean
        self.var[...] = self.momentum * self.var[...] + (1 - self.momentum) * var
        return normalization.batch_normalize(x, scale, bias, self.epsilon)


class Conv3x3(nnx.Module):
    """:class:`jaxdl.models.classifiers.Conv3x3`: ``nn.Conv2d(kernel_size=3, padding=1)``, PyTorch's init.

    Args:
      in_features: input channels C; PyTorch's bounds use fan_in = 9 C.
      features: output channels F; the kernel is ``(3, 3, C, F)`` (HWIO), the bias ``(F,)``.
      stride: the same in both directions.
      impl: the implementation, as :func:`jaxdl.models.classifiers.conv3x3`'s ``impl``.
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws the initial kernel and bias.
    """

    def __init__(self, in_features: int, features: int, stride: int = 1, impl: ConvImpl = "auto", *,
                 rngs: nnx.Rngs):  # fmt: skip
        fan_in = 9 * in_features
        self.kernel = nnx.Param(torch_linear_kernel(rngs.params(), (3, 3, in_features, features), jnp.float32))
        self.bias = nnx.Param(torch_linear_bias(fan_in)(rngs.params(), (features,), jnp.float32))
        self.stride, self.impl = stride, impl

    def __call__(self, x: jax.Array) -> jax.Array:
        """The convolution with this layer's kernel and bias.

        Args:
          x: ``(B, H, W, C)`` (NHWC); integer images are cast to the kernel's dtype first.

        Returns:
          ``(B, ceil(H / stride), ceil(W / stride), F)``.
        """
        kernel = self.kernel[...]
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(kernel.dtype)  # uint8 images as they load
        return conv3x3(x, kernel.astype(x.dtype), self.stride, self.impl, self.bias[...].astype(x.dtype))


class ColumnDense(nnx.Module):
    """:class:`jaxdl.models.blobs.ColumnDense`: ``nn.Dense`` for points stored as columns,
    ``(..., in, N) -> (..., features, N)``; biases drawn as PyTorch's under ``init_scheme="torch"``, else zero.

    Args:
      fan_in: the input width ``in``; the kernel is ``(fan_in, features)``.
      features: the output width; the bias is ``(features,)``.
      init_scheme: the kernel initialiser's name, as :func:`jaxdl.functional.init.kernel_init`'s
        ("torch" draws PyTorch's ``nn.Linear`` kernel and bias; the others leave the bias at zero).
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws the initial kernel and bias.
    """

    def __init__(self, fan_in: int, features: int, init_scheme: str = "torch", *, rngs: nnx.Rngs):
        bias_init = torch_linear_bias(fan_in) if init_scheme == "torch" else zeros
        self.kernel = nnx.Param(kernel_init(init_scheme)(rngs.params(), (fan_in, features), jnp.float32))
        self.bias = nnx.Param(bias_init(rngs.params(), (features,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """``kernel' x + bias``, the bias broadcast along the points.

        Args:
          x: ``(..., fan_in, N)``: N points stored as columns.

        Returns:
          ``(..., features, N)``.
        """
        return column_dense(self.kernel[...], self.bias[...], x)


class BlobClassifier(nnx.Module):
    """:class:`jaxdl.models.BlobClassifier`, tutorial 0's ``Linear(2, 5) -> Linear(5, 1)``: one logit per point.

    Args:
      in_features: the coordinates per point (the tutorial's 2).
      hidden: the width of the first layer (the tutorial's 5).
      init_scheme: the kernel initialiser's name; "torch" draws what PyTorch's ``nn.Linear`` draws
        (kernel and bias), the others leave the biases at zero.
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws both layers' initial arrays.
    """

    def __init__(self, in_features: int = 2, hidden: int = 5, init_scheme: str = "torch", *, rngs: nnx.Rngs):
        self.hidden = ColumnDense(in_features, hidden, init_scheme, rngs=rngs)
        self.output = ColumnDense(hidden, 1, init_scheme, rngs=rngs)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:  # (N, 2) -> (N,)
        """One logit per point: positive means class 1.

        Args:
          x: ``(N, 2)`` points (or ``(..., N, in_features)``).
          train: unused (the network has neither dropout nor batch norm); taken as the other twins take it.

        Returns:
          ``(N,)`` logits (``(..., N)``); ``sigmoid`` of them is the tutorial's output.
        """
        return self.output(self.hidden(jnp.swapaxes(x, -1, -2)))[..., 0, :]


class MLP(nnx.Module):
    """:class:`jaxdl.models.MLP`: flatten -> Linear(in, hidden) -> ReLU -> Linear(hidden, classes).

    Args:
      in_features: the inputs' values per example once flattened (3072 for ``(32, 32, 3)`` images).
      hidden: the width of the hidden layer.
      num_classes: the number of output logits.
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws both layers' initial arrays.
    """

    def __init__(self, in_features: int = 3072, hidden: int = 100, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.fc1, self.fc2 = Linear(in_features, hidden, rngs=rngs), Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Class logits for a batch, flattened per example.

        Args:
          x: ``(B, ...)`` inputs of ``in_features`` values each, e.g. ``(B, 32, 32, 3)`` images.
          train: unused (no dropout or batch norm); taken as the other twins take it.

        Returns:
          ``(B, num_classes)`` logits, e.g. ``(B, 10)``.
        """
        return self.fc2(relu(self.fc1(x.reshape(x.shape[0], -1))))


def SmallMLP(in_features: int = 784, hidden: int = 128, num_classes: int = 10, *, rngs: nnx.Rngs) -> MLP:  # noqa: N802
    """:class:`jaxdl.models.SmallMLP`: the MLP 784-128-10.

    Args:
      in_features: the values per example once flattened (784 for ``(28, 28)`` images).
      hidden: the width of the hidden layer.
      num_classes: the number of output logits.
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws the initial arrays.

    Returns:
      An :class:`MLP` of these widths, mapping ``(B, 28, 28)`` images to ``(B, 10)`` logits by default.
    """
    return MLP(in_features, hidden, num_classes, rngs=rngs)


class CNN(nnx.Module):
    """:class:`jaxdl.models.CNN`: four 3x3 convolutions with batch norm and leaky ReLU, then
    Linear(4096, 128), batch norm, leaky ReLU, dropout and Linear(128, 10); 591,914 parameters.

    Args:
      num_classes: the number of output logits.
      drop_rate: the probability that dropout zeroes a unit of the 128-wide layer.
      conv: the convolutions' implementation, as :func:`jaxdl.models.classifiers.conv3x3`'s ``impl``.
      batch_groups: how many groups the convolutions see the batch in; 0 chooses as the Linen CNN's
        :meth:`jaxdl.models.classifiers.CNN.groups` does.
      image_size: the height and width of the square input images; sets the first linear layer's
        fan-in (4096 for 32).
      channels: the input images' channels (3 for RGB).
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws the initial weights; dropout keeps a fork
        of its ``dropout`` stream for the masks.
    """

    LAYERS = ((32, 1), (32, 2), (64, 1), (64, 2))

    def __init__(self, num_classes: int = 10, drop_rate: float = 0.5, conv: ConvImpl = "auto",
                 batch_groups: int = 0, image_size: int = 32, channels: int = 3, *, rngs: nnx.Rngs):  # fmt: skip
        features_in, size = channels, image_size
        for i, (features, stride) in enumerate(self.LAYERS, start=1):
            setattr(self, f"conv{i}", Conv3x3(features_in, features, stride, conv, rngs=rngs))
            setattr(self, f"bn{i}", BatchNorm(features))
            features_in, size = features, (size - 1) // stride + 1
        self.fc1, self.bn5 = Linear(features_in * size * size, 128, rngs=rngs), BatchNorm(128)
        self.dropout = nnx.Dropout(drop_rate, rngs=rngs)
        self.fc2 = Linear(128, num_classes, rngs=rngs)
        self.batch_groups = batch_groups

    def __call__(self, x: jax.Array, train: bool = False, dropout_key: jax.Array | None = None) -> jax.Array:
        """Class logits for a batch of images.

        Args:
          x: ``(B, 32, 32, 3)`` images (NHWC; ``(B, image_size, image_size, channels)``), floats or uint8.
          train: batch statistics (updating the running ones in place) and dropout when True; running
            statistics and no dropout when False.
          dropout_key: the dropout mask's key (default: the next key of the model's ``dropout``
            stream); used only when ``train``.

        Returns:
          ``(B, num_classes)`` logits, e.g. ``(B, 10)``.
        """
        groups = LinenCNN(batch_groups=self.batch_groups).groups()  # the same choice as the Linen CNN's
        parts = jnp.array_split(x, max(1, min(groups, x.shape[0])))
        for i in range(1, len(self.LAYERS) + 1):
            conv, norm = getattr(self, f"conv{i}"), getattr(self, f"bn{i}")
            parts = [leaky_relu(g) for g in norm([conv(g) for g in parts], train)]
        x = self.fc1(jnp.concatenate([g.reshape(g.shape[0], -1) for g in parts]))
        x = self.dropout(leaky_relu(self.bn5(x, train)), deterministic=not train, rngs=dropout_key)
        return self.fc2(x)


class VAE(nnx.Module):
    """:class:`jaxdl.models.VAE`: ``(logits, mean, logvar)`` of images ``(B, 784)`` (and labels when
    conditional); the reparameterisation draws from the ``sample`` stream of ``rngs``.

    Args:
      latents: the dimension of z (the tutorial's 20).
      hidden: the width of the encoder's and decoder's hidden layer (400).
      features: pixels per image (784).
      num_classes: > 0 conditions the encoder and decoder on the one-hot label.
      rngs: the ``nnx.Rngs`` whose ``params`` stream draws the five layers' initial arrays; the model
        keeps it, and its ``sample`` stream gives the reparameterisation's noise.
    """

    def __init__(self, latents: int = 20, hidden: int = 400, features: int = 784, num_classes: int = 0, *,
                 rngs: nnx.Rngs):  # fmt: skip
        self.enc = Linear(features + num_classes, hidden, rngs=rngs)
        self.enc_mean, self.enc_logvar = Linear(hidden, latents, rngs=rngs), Linear(hidden, latents, rngs=rngs)
        self.dec = Linear(latents + num_classes, hidden, rngs=rngs)
        self.dec_out = Linear(hidden, features, rngs=rngs)
        self.num_classes, self.rngs = num_classes, rngs

    def _with_label(self, x: jax.Array, labels: jax.Array | None) -> jax.Array:
        return with_label(x, labels, self.num_classes)

    def encode(self, image: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """q(z|x): the encoder's Gaussian for each image.

        Args:
          image: ``(B, features)`` images, e.g. ``(B, 784)`` in [0, 1].
          labels: ``(B,)`` integer labels for a conditional VAE; ignored (may be None) when ``num_classes`` is 0.

        Returns:
          ``(mean, logvar)``, each ``(B, latents)``.
        """
        h = relu(self.enc(self._with_label(image, labels)))
        return self.enc_mean(h), self.enc_logvar(h)

    def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """The reconstruction's Bernoulli logits for latents ``z``.

        Args:
          z: ``(B, latents)`` latent codes.
          labels: ``(B,)`` integer labels for a conditional VAE; ignored (may be None) when ``num_classes`` is 0.

        Returns:
          ``(B, features)`` logits, e.g. ``(B, 784)``.
        """
        return self.dec_out(relu(self.dec(self._with_label(z, labels))))

    def __call__(self, image: jax.Array, labels: jax.Array | None = None, train: bool = False,
                 key: jax.Array | None = None):  # fmt: skip
        """Encodes, samples z by the reparameterisation, and decodes.

        Args:
          image: ``(B, features)`` images, e.g. ``(B, 784)`` in [0, 1].
          labels: ``(B,)`` integer labels; needed when ``num_classes`` > 0, else ignored.
          train: unused (no dropout or batch norm); taken as the Linen VAE takes it.
          key: the reparameterisation's noise (default: the next key of the ``sample`` stream).

        Returns:
          ``(logits, mean, logvar)``: the reconstruction's ``(B, features)`` Bernoulli logits and
          q(z|x)'s ``(B, latents)`` mean and log-variance.

        Raises:
          ValueError: a conditional VAE called without labels.
        """
        if self.num_classes and labels is None:
            raise ValueError("a conditional VAE (num_classes > 0) needs labels")
        mean, logvar = self.encode(image, labels)
        z = reparameterize(self.rngs.sample() if key is None else key, mean, logvar)
        return self.decode(z, labels), mean, logvar


def from_linen(model: nnx.Module, variables: dict[str, Any]) -> nnx.Module:
    """Loads Linen ``variables`` (``{"params": ..., "batch_stats": ...}``) into the twin ``model``, in place.

    Args:
      model: the NNX twin, e.g. :class:`CNN`, of the Linen module whose variables these are.
      variables: the Linen module's variables, as ``init`` gives them; a collection the twin lacks
        may be absent.

    Returns:
      ``model`` itself, now holding the Linen arrays.

    Raises:
      ValueError: the trees differ (another network, or other widths).
    """
    for kind, collection in ((nnx.Param, "params"), (nnx.BatchStat, "batch_stats")):
        state = nnx.state(model, kind)
        ours, theirs = nnx.to_pure_dict(state), dict(variables.get(collection, {}))
        if jax.tree.structure(ours) != jax.tree.structure(theirs) or jax.tree.map(jnp.shape, ours) != jax.tree.map(
            jnp.shape, theirs
        ):
            raise ValueError(f"the Linen {collection} do not fit this {type(model).__name__}: "
                             f"{jax.tree.map(jnp.shape, theirs)} against {jax.tree.map(jnp.shape, ours)}")  # fmt: skip
        nnx.replace_by_pure_dict(state, theirs)
        nnx.update(model, state)
    return model


def to_linen(model: nnx.Module) -> dict[str, Any]:
    """The twin's arrays as Linen variables: ``{"params": ...}`` and ``{"batch_stats": ...}`` where it has any.

    Args:
      model: an NNX twin, e.g. :class:`MLP`.

    Returns:
      ``{"params": ...}``, with ``"batch_stats"`` too when the twin has batch norm: nested dicts of
      arrays in the Linen module's tree, ready for its ``apply``.
    """
    variables = {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))}
    stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    if stats:
        variables["batch_stats"] = stats
    return variables


def has_twin(linen: Any) -> bool:
    """Whether the Linen module ``linen`` has an NNX twin here (:class:`AsLinen` can stand in for it).

    Args:
      linen: a Linen module.

    Returns:
      True for the blob classifier, the MLPs, the CNN and the VAE.
    """
    from jaxdl.models import blobs, classifiers, vae

    return isinstance(linen, (blobs.BlobClassifier, classifiers.MLP, classifiers.CNN, vae.VAE))


def _twin_of(linen: Any, x: jax.Array, rngs: nnx.Rngs) -> nnx.Module:
    """The NNX twin of the Linen module ``linen`` for inputs shaped like ``x``."""
    from jaxdl.models import blobs, classifiers, vae

    if isinstance(linen, blobs.BlobClassifier):
        return BlobClassifier(x.shape[-1], linen.hidden, linen.init_scheme, rngs=rngs)
    if isinstance(linen, classifiers.MLP):  # SmallMLP too
        return MLP(math.prod(x.shape[1:]), linen.hidden, linen.num_classes, rngs=rngs)
    if isinstance(linen, classifiers.CNN):
        return CNN(linen.num_classes, linen.drop_rate, linen.conv, linen.batch_groups, x.shape[1], x.shape[-1],
                   rngs=rngs)  # fmt: skip
    if isinstance(linen, vae.VAE):
        return VAE(linen.latents, linen.hidden, linen.features, linen.num_classes, rngs=rngs)
    raise ValueError(f"no NNX twin of {type(linen).__name__}")


def linen_key(stream: str, child: str | None, key: jax.Array) -> jax.Array:
    """The key a Linen module draws with ``make_rng(stream)`` (in its child ``child``, or at the top) when
    applied with ``rngs={stream: key}``: the twin then draws the same noise.

    Args:
      stream: the RNG stream's name, e.g. ``"dropout"`` or ``"sample"``.
      child: the name of the child module that draws, e.g. ``"Dropout_0"``; None for the top module.
      key: the ``jax.random`` key given to Linen's ``apply`` for ``stream``.

    Returns:
      The key ``make_rng(stream)`` returns there.
    """
    import flax.linen as nn

    class Draw(nn.Module):
        @nn.compact
        def __call__(self):
            return self.make_rng(stream)

    class Top(nn.Module):
        @nn.compact
        def __call__(self):
            return Draw(name=child)() if child else self.make_rng(stream)

    return Top().apply({}, rngs={stream: key})


def _placeholder(leaf: Any) -> Any:
    """A concrete stand-in for an abstract leaf of the twin's random streams (a key, or a counter)."""
    if not isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.split(jax.random.key(0), leaf.shape) if leaf.shape else jax.random.key(0)
    return jnp.zeros(leaf.shape, leaf.dtype)


@dataclasses.dataclass(frozen=True)
class AsLinen:
    """An NNX twin behind the Linen interface that :class:`jaxdl.train.Task` calls (``init``, ``apply``).

    The state travels as Linen's variables (the trees are the same), so the engine's steps, replicas,
    checkpoints and resumes are unchanged; inside each compiled step the twin is merged from them, run,
    and its batch statistics split out again. ``init`` is the Linen module's, and the dropout and
    sampling noise are the keys the Linen module would draw: from one seed the two APIs train alike.

    Attributes:
      linen: the Linen module this twin stands for (:class:`jaxdl.models.BlobClassifier`, ``MLP``,
        ``SmallMLP``, ``CNN`` or ``VAE``); it gives ``init`` and the twin's widths.
    """

    linen: Any  # the Linen module this twin stands for

    def init(self, rngs: dict[str, jax.Array], x: jax.Array, *args, **kwargs) -> dict[str, Any]:
        """The Linen module's ``init``: the variables both APIs start from.

        Args:
          rngs: Linen's keys by stream, e.g. ``{"params": key, "dropout": key}``.
          x: an example batch, e.g. ``(B, 32, 32, 3)`` images, that fixes the shapes.
          *args: passed on to the Linen module's ``init`` (the VAE's labels).
          **kwargs: passed on likewise (``train`` among them).

        Returns:
          The Linen variables, ``{"params": ...}`` and ``{"batch_stats": ...}`` where the network has any.
        """
        return self.linen.init(rngs, x, *args, **kwargs)

    def apply(self, variables: dict[str, Any], x: jax.Array, *args, train: bool = False,
              rngs: dict[str, jax.Array] | None = None, mutable: Any = False, **kwargs):  # fmt: skip
        """Runs the twin on Linen ``variables``, as the Linen module's ``apply`` would.

        Args:
          variables: the Linen variables, ``{"params": ...}`` and ``"batch_stats"`` where the network has any.
          x: the input batch, e.g. ``(B, 32, 32, 3)`` images for the CNN or ``(B, 784)`` for the VAE.
          *args: passed on to the VAE (its labels); the other twins take none.
          train: training mode: batch statistics and dropout (the CNN).
          rngs: Linen's keys by stream: ``"sample"`` for the VAE, ``"dropout"`` for the CNN in
            training; the twin draws the keys the Linen module would derive from them.
          mutable: truthy (as Linen's ``mutable=["batch_stats"]``) to return the updated batch statistics too.
          **kwargs: passed on to the VAE; the other twins take none.

        Returns:
          The network's outputs (e.g. ``(B, 10)`` logits; the VAE's ``(logits, mean, logvar)``), or
          ``(outputs, {"batch_stats": ...})`` when ``mutable``.
        """
        abstract = nnx.eval_shape(lambda: _twin_of(self.linen, x, nnx.Rngs(0)))
        graphdef, params, stats, rest = nnx.split(abstract, nnx.Param, nnx.BatchStat, ...)
        nnx.replace_by_pure_dict(params, variables["params"])
        if "batch_stats" in variables:
            nnx.replace_by_pure_dict(stats, variables["batch_stats"])
        rest = jax.tree.map(_placeholder, rest)  # the twin's own random stream: unused, the keys are given
        model = nnx.merge(graphdef, params, stats, rest)
        rngs = rngs or {}
        if isinstance(model, VAE):
            outputs = model(x, *args, train=train, key=linen_key("sample", None, rngs["sample"]), **kwargs)
        elif isinstance(model, CNN) and train:
            outputs = model(x, train=True, dropout_key=linen_key("dropout", "Dropout_0", rngs["dropout"]))
        else:
            outputs = model(x, train=train)
        if mutable:
            return outputs, {"batch_stats": nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))}
        return outputs

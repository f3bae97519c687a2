"""Every experiment's settings, as the frozen dataclasses that :mod:`jaxdl.config` resolves.

They live here, apart from the experiments' code, so that reading them
(``jaxdl run NAME --help-config``, a config check) imports no JAX, Flax or
Optax: this module imports only the standard library and jaxdl's own light
modules. Each experiment module re-exports its class under the name it had
there (``blobs.Config``, ``cifar10.CNNConfig``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from jaxdl.config import Sweep, setting
from jaxdl.errors import JaxdlError


# common
@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """What the engine reads, for every experiment trained by ``fit``; configs inherit it and
    redeclare a field to change its default or help text."""

    epochs: int = setting(1, "training epochs", ge=1)
    batch_size: int = setting(32, "examples per step", ge=1)
    seed: int = setting(0, "PRNG seed: initialisation, per-step randomness and shuffling", ge=0)
    keep_checkpoints: int = setting(2, "checkpoints kept (one per epoch, one more on a stop)", ge=1)
    chunk_seconds: float = setting(
        10.0, "longest a stop request (SIGTERM, Ctrl-C) waits: epochs run in compiled chunks this long", gt=0
    )
    devices: int = setting(0, "devices each batch is split over (0: every device JAX sees)", ge=0)
    precision: Literal["float32", "bfloat16"] = setting(
        "float32", "compute dtype; bfloat16 is mixed precision with float32 parameters"
    )
    diagnostics: bool = setting(
        False, "per-layer statistics (activations, gradients, update ratios) in history.jsonl and diagnostics.png"
    )
    diagnostics_every: int = setting(1, "measure them after every this many epochs", ge=1)
    tensorboard: bool = setting(False, "write TensorBoard event files to RUN/tensorboard (same as --tensorboard)")
    seeds: int = setting(
        1, "replicas trained together by jax.vmap, seeded seed, seed+1, ...: figures as mean +- 95% interval", ge=1
    )
    sweep: Sweep = setting(Sweep(), "value-only settings trained side by side in one program (from --set KEY=A,B)")
    api: Literal["linen", "nnx"] = setting(
        "linen", "the network in Flax Linen, or its Flax NNX twin (jaxdl.models.nnx_models): same start, same steps"
    )

    def fixed_length(self) -> str | None:
        """Why a finished run of these settings cannot be trained for more epochs.

        Returns:
          The reason, one line for the user, or None when the run can go on (``jaxdl resume --epochs``).
        """
        return None

    def check(self) -> None:
        """Checks, before anything is written, that the devices exist and the batch (or replicas) split over them.

        Raises:
          JaxdlError: too few devices, a batch or a replica count that does not divide over them, or
            diagnostics or TensorBoard asked of several replicas.
        """
        from jaxdl.train import parallel  # JAX: only when a run is checked, not to list settings

        mesh = parallel.data_mesh(self.devices)
        replicas = self.seeds * len(self.sweep.combinations())
        if replicas == 1:
            parallel.check_batch_size(self.batch_size, mesh)
        elif replicas % mesh.size:
            raise JaxdlError(
                f"{replicas} replicas (seeds x sweep) do not divide over {mesh.size} devices; "
                f"use a multiple of {mesh.size} or set devices"
            )
        if replicas > 1 and (self.diagnostics or self.tensorboard):
            raise JaxdlError("diagnostics and tensorboard watch one run; use seeds=1 without a sweep")


# blobs
@dataclasses.dataclass(frozen=True)
class BlobsConfig:
    """Settings of ``blobs`` (tutorial 0): full-batch SGD on scikit-learn's two-dimensional blobs."""

    n_samples: int = setting(1000, "points drawn by make_blobs", ge=2)
    cluster_std: float = setting(3.0, "standard deviation of each blob", gt=0)
    data_seed: int = setting(1, "make_blobs random_state (the tutorial's 1)", ge=0)
    hidden: int = setting(5, "width of the first linear layer", ge=1)
    lr: float = setting(5e-4, "SGD learning rate", gt=0)
    epochs: int = setting(1000, "full-batch epochs (one SGD step each)", ge=1)
    log_every: int = setting(100, "print a log line every this many epochs", ge=1)
    init: Literal["torch", "tutorial", "glorot", "he"] = setting(
        "torch",
        "initial weights: PyTorch's nn.Linear default drawn from `seed`, the tutorial's exact "
        "weights, Glorot uniform or He normal",
    )
    seed: int = setting(0, "PRNG seed for the initial weights", ge=0)
    seeds: int = setting(64, "initialisations trained at once with vmap, besides the first (0 skips)", ge=0)

    def check(self) -> None:
        """Refuses ``init=tutorial`` with a width other than the tutorial's 5 (raises JaxdlError)."""
        if self.init == "tutorial" and self.hidden != 5:
            raise JaxdlError(f"init=tutorial needs hidden=5 (the tutorial's width), got {self.hidden}")


# autodiff_modes
@dataclasses.dataclass(frozen=True)
class AutodiffModesConfig:
    """Settings of ``autodiff-modes``: jacfwd against jacrev over n and m, and a loss gradient by jvp against vjp."""

    sizes: tuple[int, ...] = setting((1, 10, 100, 1000), "values of n and of m", ge=1)
    hidden: int = setting(64, "hidden width of f: R^n -> R^m", ge=1)
    repeats: int = setting(
        7, "least timed samples per measurement (more until the median's 95% interval is within +-5%, at most 60)", ge=1
    )
    loss_sizes: tuple[int, ...] = setting(
        (16, 64, 32, 1), "layer widths of the network whose loss gradient is timed", ge=1
    )
    remat_depth: int = setting(16, "layers of the network used for the jax.checkpoint comparison", ge=1)
    seed: int = setting(0, "PRNG seed", ge=0)

    def check(self) -> None:
        """Refuses empty ``sizes`` and ``loss_sizes`` of fewer than two widths (raises JaxdlError)."""
        if not self.sizes:
            raise JaxdlError("setting sizes needs at least one value")
        if len(self.loss_sizes) < 2:
            raise JaxdlError("setting loss_sizes needs at least two widths (inputs and outputs)")


# forward_gradient
NETWORKS = ("blobs", "digits", "cifar10")


@dataclasses.dataclass(frozen=True)
class ForwardGradientConfig:
    """Settings of ``forward-gradient``: SGD with forward gradients against backprop on three networks."""

    networks: tuple[Literal["blobs", "digits", "cifar10"], ...] = setting(
        NETWORKS, "the networks trained (cifar10 needs a local copy)"
    )
    data: str = setting("", "local copy of CIFAR-10 for the cifar10 network; empty: $JAXDL_DATA_DIR or TFDS")
    steps: int = setting(2000, "SGD steps of each training run", ge=2)
    batch_size: int = setting(64, "examples per step (blobs: the full batch of 1,000)", ge=1)
    lr: float = setting(0.05, "SGD learning rate with backprop's gradient", gt=0)
    forward_lr_n: float = setting(
        12.0,
        "the forward gradient's SGD rate is min(lr, forward_lr_n / (n + 2)) for n parameters: its second "
        "moment is (n + 2) |g|^2, so a stable rate falls like 1/n",
        gt=0,
    )
    draws: int = setting(2000, "forward gradients drawn at the start for the unbiasedness test", ge=10)
    seed: int = setting(0, "PRNG seed: initialisation, directions and batches", ge=0)

    def check(self) -> None:
        """Refuses an empty ``networks`` (raises JaxdlError)."""
        if not self.networks:
            raise JaxdlError(f"setting networks needs at least one of {', '.join(NETWORKS)}")


# forward_learning
FORWARD_LEARNING_METHODS = ("backprop", "lg-bp", "fg-w", "fg-a", "heads")


@dataclasses.dataclass(frozen=True)
class ForwardLearningConfig:
    """Settings of ``forward-learning``: backprop, local losses and forward gradients on an MNIST or CIFAR-10 MLP."""

    dataset: Literal["mnist", "cifar10"] = setting(
        "mnist", "the images, flattened: mnist (784 inputs in [0, 1]) or cifar10 (3072, standardised per channel)"
    )
    data: str = setting("", "local copy of the dataset; empty: $JAXDL_DATA_DIR or TFDS")
    hidden: tuple[int, ...] = setting(
        (512, 512, 512), "widths of the blocks (a dense layer, ReLU and `groups` linear heads each)", ge=1
    )
    methods: tuple[Literal["backprop", "lg-bp", "fg-w", "fg-a", "heads"], ...] = setting(
        FORWARD_LEARNING_METHODS,
        "backprop (end to end), lg-bp (backprop inside each block, local losses), fg-w / fg-a (weight- / "
        "activity-perturbed forward gradients of the local losses), heads (the heads alone, the dense layers "
        "frozen at their start: what the exact heads learn on random features)",
    )
    epochs: int = setting(4, "passes over the training images, the same for every method", ge=1)
    batch_size: int = setting(128, "examples per step", ge=1)
    lr: float = setting(1e-3, "Adam learning rate, the same for every method", gt=0)
    groups: int = setting(
        16, "local losses per block: head j's gradient enters the j-th group of the block's units only", ge=1
    )
    tangents: int = setting(
        64,
        "random tangents averaged per block and step by fg-a (fg-w draws one: each of its tangents is as large as "
        "the weights)",
        ge=1,
    )
    signs: bool = setting(True, "fg-a's tangents are random signs, 32 per random word, rather than normal draws")
    n_train: int = setting(0, "training images, a random subset (0: all)", ge=0)
    n_test: int = setting(0, "test images, a random subset (0: all)", ge=0)
    validation: int = setting(
        0, "for tuning: hold out this many training images and report on them in place of the test images", ge=0
    )
    seeds: int = setting(4, "replicas per method trained together by jax.vmap (seeds seed, seed+1, ...)", ge=1)
    cosine_ks: tuple[int, ...] = setting(
        (1, 4, 16, 64), "numbers of tangents k at which each estimator's cosine is measured", ge=1
    )
    cosine_draws: int = setting(16, "estimates drawn per k for the cosine", ge=2)
    seed: int = setting(0, "PRNG seed: initialisation, tangents, subsets and shuffling", ge=0)

    def check(self) -> None:
        """Checks that there is a method, a block and a k, and that the groups divide every width.

        Raises:
          JaxdlError: one of those fails, in one line naming the setting.
        """
        for name in ("methods", "hidden", "cosine_ks"):
            if not getattr(self, name):
                raise JaxdlError(f"setting {name} needs at least one value")
        if any(h % self.groups for h in self.hidden):
            raise JaxdlError(f"setting groups={self.groups} must divide every width in hidden={self.hidden}")


# scratch_mlp
@dataclasses.dataclass(frozen=True)
class ScratchMLPConfig:
    """Settings of ``scratch-mlp``: a NumPy MLP with hand-written backprop against the same in JAX, on two digits."""

    dataset: Literal["digits", "mnist"] = setting("digits", "digits: scikit-learn's 8x8 digits; mnist: 28x28")
    data: str = setting("", "local copy of MNIST for dataset=mnist")
    classes: tuple[int, ...] = setting((3, 8), "the two digits to tell apart, e.g. 3,8", ge=0, le=9)
    hidden: tuple[int, ...] = setting((16, 8), "hidden layer widths (empty: no hidden layer)", ge=1)
    epochs: int = setting(40, "epochs", ge=1)
    batch_size: int = setting(64, "mini-batch size", ge=1)
    lr: float = setting(0.1, "SGD learning rate", gt=0)
    seed: int = setting(0, "seed of the initial parameters and of the batch order", ge=0)

    def check(self) -> None:
        """Refuses ``classes`` other than two different digits (raises JaxdlError)."""
        if len(self.classes) != 2 or self.classes[0] == self.classes[1]:
            raise JaxdlError(f"setting classes needs two different digits, got {','.join(map(str, self.classes))}")


# scalar_engine
@dataclasses.dataclass(frozen=True)
class ScalarEngineConfig:
    """Settings of ``scalar-engine``: the tutorial's scalar autograd engine trained on a few MNIST images."""

    data: str = setting("", "local copy of MNIST (folder, .tar.gz, IDX folder); empty: $JAXDL_DATA_DIR or TFDS")
    n_train: int = setting(24, "first MNIST training images (the tutorial's 512)", ge=1)
    epochs: int = setting(1, "passes over them (the tutorial's 5)", ge=1)
    n_test: int = setting(1000, "first test images for the accuracy of the trained network", ge=1)
    lr: float = setting(0.05, "per-sample SGD learning rate", gt=0)
    init: Literal["tutorial", "torch", "he"] = setting(
        "tutorial", "tutorial: uniform in [-1, 1]; torch: PyTorch's default; he: N(0, 2/fan_in)"
    )
    seed: int = setting(42, "seed of the engine's own random.Random (the tutorial's 42)", ge=0)


# monte_carlo
@dataclasses.dataclass(frozen=True)
class MonteCarloConfig:
    """Settings of ``monte-carlo``: Monte Carlo means of a Gaussian, and score against pathwise gradients."""

    mu: float = setting(0.5, "mean of the Gaussian")
    sigma: float = setting(1.0, "standard deviation of the Gaussian", gt=0)
    max_samples: int = setting(100_000, "largest S (powers of 10 from 1 up to it)", ge=10)
    repeats: int = setting(1000, "independent estimators per S", ge=10)
    gradient_samples: int = setting(100, "samples per gradient estimate", ge=2)
    seed: int = setting(0, "PRNG seed", ge=0)


# minibatch_sgd
@dataclasses.dataclass(frozen=True)
class MinibatchSGDConfig:
    """Settings of ``minibatch-sgd``: the minibatch gradient's bias and variance, and SGD by batch size."""

    batch_for_bias: int = setting(32, "batch size of the unbiasedness test", ge=1)
    draws: int = setting(4000, "minibatch gradients drawn per batch size", ge=10)
    sgd_batches: tuple[int, ...] = setting((8, 32, 128, 1000), "batch sizes of the SGD comparison", ge=1)
    epochs: int = setting(30, "epochs of each SGD run", ge=1)
    lr: float = setting(0.05, "SGD learning rate", gt=0)
    seed: int = setting(0, "PRNG seed", ge=0)


# optimizers
@dataclasses.dataclass(frozen=True)
class OptimizersConfig:
    """Settings of ``optimizers``: seven optimizers on three toy problems, and a learning-rate range test."""

    steps: int = setting(300, "steps on each toy problem", ge=1)
    range_steps: int = setting(300, "steps of the learning-rate range test", ge=10)
    seed: int = setting(0, "PRNG seed", ge=0)


# activations
@dataclasses.dataclass(frozen=True)
class ActivationsConfig:
    """Settings of ``activations``: per-layer gradient norms of a deep MLP by activation and initialisation."""

    depth: int = setting(20, "hidden layers", ge=2)
    steps: int = setting(200, "SGD steps before the second measurement", ge=1)
    lr: float = setting(0.05, "SGD learning rate", gt=0)
    batch_size: int = setting(128, "examples per step", ge=2)
    seed: int = setting(0, "PRNG seed", ge=0)


# universal_approximation
@dataclasses.dataclass(frozen=True)
class UniversalApproximationConfig:
    """Settings of ``universal-approximation``: one hidden layer of N sigmoids fitting 1-D and 2-D functions."""

    widths: tuple[int, ...] = setting((1, 2, 4, 8, 16, 32, 64), "hidden widths N", ge=1)
    steps: int = setting(12000, "full-batch Adam steps per fit", ge=1)
    lr: float = setting(3e-2, "Adam learning rate", gt=0)
    points: int = setting(200, "training points per axis", ge=4)
    seed: int = setting(0, "PRNG seed", ge=0)

    def check(self) -> None:
        """Refuses an empty ``widths`` (raises JaxdlError)."""
        if not self.widths:
            raise JaxdlError("setting widths needs at least one width")


# regularization
@dataclasses.dataclass(frozen=True)
class RegularizationConfig:
    """Settings of ``regularization``: dropout, weight decay, early stopping and clipping against over-fitting."""

    dataset: Literal["digits", "mnist"] = setting("digits", "digits (embedded) or mnist (needs a local copy)")
    data: str = setting("", "local copy of MNIST for dataset=mnist")
    n_train: int = setting(300, "training images (few, to over-fit)", ge=10)
    n_val: int = setting(500, "validation images", ge=10)
    label_noise: float = setting(0.2, "fraction of training labels replaced by a different random class", ge=0, lt=1)
    epochs: int = setting(100, "epochs per run", ge=2)
    batch_size: int = setting(50, "examples per step", ge=1)
    lr: float = setting(1e-3, "Adam learning rate", gt=0)
    drop_rate: float = setting(0.5, "dropout rate of the dropout run", ge=0, lt=1)
    weight_decay: float = setting(0.5, "AdamW decoupled weight decay of the weight-decay run", ge=0)
    patience: int = setting(5, "early-stopping patience (epochs)", ge=1)
    clip_norm: float = setting(0.5, "global gradient-norm clip of the clipping run", gt=0)
    seed: int = setting(0, "PRNG seed", ge=0)
    seeds: int = setting(
        1, "replicas of every variant trained together by jax.vmap (seeds seed, seed+1, ...): gains as mean "
        "+- 95% interval", ge=1,
    )  # fmt: skip
    keep_checkpoints: int = setting(1, "checkpoints kept per run", ge=1)


# mnist_mlp
@dataclasses.dataclass(frozen=True)
class MNISTMLPConfig(EngineSettings):
    """Settings of ``mnist-mlp``: MNIST 784-128-10 with early stopping, trained by the engine."""

    data: str = setting("", "local copy of MNIST (folder, .tar.gz, IDX folder); empty: $JAXDL_DATA_DIR or TFDS")
    n_train: int = setting(4096, "first training images used", ge=1)
    n_val: int = setting(1024, "first test images used for validation", ge=1)
    epochs: int = setting(3, "maximum epochs", ge=1)
    batch_size: int = setting(64, "examples per step", ge=1)
    lr: float = setting(1e-2, "SGD learning rate", gt=0)
    patience: int = setting(2, "epochs without a lower validation loss before stopping", ge=1)


# cifar10
@dataclasses.dataclass(frozen=True)
class MLPConfig(EngineSettings):
    """Settings of ``cifar10-mlp``: tutorial 1's MLP on CIFAR-10, trained by the engine."""

    data: str = setting("", "local copy of CIFAR-10 (folder, .tar.gz); empty: $JAXDL_DATA_DIR or TFDS")
    train_size: int = setting(0, "train on a random sample of this many training images (0: all of them)", ge=0)
    hidden: int = setting(100, "hidden units (the tutorial's code 100; its text mentions 200)", ge=1)
    epochs: int = setting(5, "training epochs", ge=1)
    batch_size: int = setting(100, "examples per step", ge=1)
    lr: float = setting(1e-3, "Adam learning rate", gt=0)


@dataclasses.dataclass(frozen=True)
class CNNConfig(EngineSettings):
    """Settings of ``cifar10-cnn``: tutorial 1's CNN on CIFAR-10, tutorial or improved recipe."""

    data: str = setting("", "local copy of CIFAR-10 (folder, .tar.gz); empty: $JAXDL_DATA_DIR or TFDS")
    train_size: int = setting(0, "train on a random sample of this many training images (0: all of them)", ge=0)
    recipe: Literal["improved", "tutorial"] = setting(
        "improved",
        "improved: crops and flips, AdamW with a one-cycle schedule, label smoothing; "
        "tutorial: the MLP's recipe (Adam 1e-3, batch 100), no augmentation",
    )
    epochs: int = setting(10, "training epochs", ge=1)
    batch_size: int = setting(100, "examples per step", ge=1)
    lr: float = setting(1e-3, "Adam learning rate (tutorial recipe)", gt=0, applies_if=("recipe", "tutorial"))
    peak_lr: float = setting(
        3e-3, "peak of the one-cycle learning-rate schedule (improved recipe)", gt=0, applies_if=("recipe", "improved")
    )
    weight_decay: float = setting(
        5e-2, "AdamW decoupled weight decay (improved recipe)", ge=0, applies_if=("recipe", "improved")
    )
    label_smoothing: float = setting(
        0.1, "label smoothing (improved recipe)", ge=0, lt=1, applies_if=("recipe", "improved")
    )
    drop_rate: float = setting(0.5, "dropout after the first dense layer", ge=0, lt=1)
    conv: Literal["auto", "im2col", "winograd", "xla"] = setting(
        "auto", "convolutions: Winograd or im2col products (CPU), XLA's convolution (GPU, TPU), or auto by backend"
    )

    def fixed_length(self) -> str | None:
        if self.recipe == "improved":
            return "the improved recipe's one-cycle learning-rate schedule spans the epochs the run began with"
        return None


# cifar10_speedrun
@dataclasses.dataclass(frozen=True)
class SpeedrunConfig(EngineSettings):
    """Settings of ``cifar10-speedrun``: an airbench-style network and recipe, for time to accuracy."""

    data: str = setting("", "local copy of CIFAR-10 (folder, .tar.gz); empty: $JAXDL_DATA_DIR or TFDS")
    train_size: int = setting(0, "train on a random sample of this many training images (0: all of them)", ge=0)
    validation: int = setting(
        0, "hold out this many training images and report on them, not on the test split (for tuning)", ge=0
    )
    target: float = setting(0.7552, "accuracy to reach (the tutorial's CNN: 75.52%); the run stops there", gt=0, le=1)
    epochs: int = setting(2, "the budget: training epochs, and the length of the learning-rate schedule", ge=1)
    batch_size: int = setting(500, "examples per step", ge=1)
    widths: tuple[int, ...] = setting((64, 128, 128), "channels of the three conv blocks", ge=1)
    whiten: bool = setting(True, "first layer: whitening filters from the data's 2x2 patches (false: learned)")
    whitening_stride: int = setting(2, "the first layer's stride: 2 halves the image for speed, 1 keeps it", ge=1, le=2)
    tta: bool = setting(True, "evaluate on each image and its mirror image, averaging the logits")
    flip: bool = setting(True, "random horizontal flips in training")
    translate: int = setting(2, "random shifts of up to this many pixels (reflected borders) in training", ge=0)
    label_smoothing: float = setting(0.2, "label smoothing", ge=0, lt=1)
    lr: float = setting(11.5, "learning rate per 1,024 examples, decoupled from the momentum (airbench's form)", gt=0)
    momentum: float = setting(0.85, "Nesterov momentum", ge=0, lt=1)
    weight_decay: float = setting(0.0153, "weight decay per 1,024 examples, decoupled from the learning rate", ge=0)
    bias_scaler: float = setting(64.0, "batch-norm biases learn this many times faster (not decaying faster)", gt=0)
    schedule: Literal["triangle", "constant"] = setting(
        "triangle", "triangle: from 0.2 up to 1 at 23% of the steps, down to 0.07 at the end; constant: 1"
    )
    conv: Literal["auto", "im2col", "winograd", "xla"] = setting(
        "auto", "convolutions: Winograd or im2col products (CPU), XLA's convolution (GPU, TPU), or auto by backend"
    )

    def fixed_length(self) -> str | None:
        return "the learning-rate schedule spans the epochs the run began with"


# image_classifier
@dataclasses.dataclass(frozen=True)
class ImageClassifierConfig(EngineSettings):
    """Settings of ``image-classifier``: tutorial 1's CNN or MLP on your own folder of images."""

    data: str = setting("", "your split/class/image folder or a .tar.gz of one (required)")
    model: Literal["cnn", "mlp"] = setting("cnn", "tutorial 1's CNN (4 conv + batch norm) or its MLP")
    image_size: str = setting("", "HxW every image is resized to, e.g. 32x32; empty: the images' own (all alike)")
    hidden: int = setting(100, "hidden units of the MLP", ge=1, applies_if=("model", "mlp"))
    drop_rate: float = setting(0.5, "dropout of the CNN's dense layer", ge=0, lt=1, applies_if=("model", "cnn"))
    augment: bool = setting(False, "random crops and horizontal flips of the training images")
    epochs: int = setting(10, "training epochs", ge=1)
    batch_size: int = setting(32, "examples per step", ge=1)
    lr: float = setting(1e-3, "Adam learning rate", gt=0)
    val_fraction: float = setting(
        0.1, "share of train carved out for validation, if there is no val folder", gt=0, lt=1
    )
    test_fraction: float = setting(0.2, "share of train carved out for testing, if there is no test folder", gt=0, lt=1)
    patience: int = setting(0, "stop after this many epochs without a lower validation loss (0: never)", ge=0)

    def check(self) -> None:
        """The engine's checks, then refuses a missing ``data`` or a malformed ``image_size`` (raises JaxdlError)."""
        super().check()
        if not self.data:
            raise JaxdlError("image-classifier needs {data}: a split/class/image folder or a .tar.gz of one")
        parse_size(self.image_size)


def parse_size(text: str) -> tuple[int, int] | None:
    """Reads an image size setting: "32x32" -> (32, 32); "" -> None.

    Args:
      text: ``HxW`` in pixels (``x`` or ``X``), or empty text for the images' own size.

    Returns:
      ``(height, width)``, or None for empty text.

    Raises:
      JaxdlError: text that is not ``HxW`` of positive integers.
    """
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise JaxdlError(f"setting image_size takes HxW, e.g. 32x32, got {text!r}") from None
    if min(h, w) < 1:
        raise JaxdlError(f"setting image_size must be positive, got {text!r}")
    return h, w


# curvature
@dataclasses.dataclass(frozen=True)
class CurvatureConfig:
    """Settings of ``curvature``: the Hessian of the CIFAR-10 MLP and CNN: top eigenvalues, density, loss slices."""

    networks: tuple[Literal["mlp", "cnn"], ...] = setting(("mlp", "cnn"), "mlp (no batch norm), cnn (batch norm)")
    data: str = setting("", "local copy of CIFAR-10 (folder, .tar.gz); empty: $JAXDL_DATA_DIR or TFDS")
    train_size: int = setting(0, "train on a random sample of this many training images (0: all of them)", ge=0)
    epochs: int = setting(3, "training epochs of a network not restored from a run", ge=0)
    batch_size: int = setting(100, "training batch size", ge=1)
    from_run_mlp: str = setting("", "run directory of `jaxdl run cifar10-mlp` to restore instead of training")
    from_run_cnn: str = setting("", "run directory of `jaxdl run cifar10-cnn` to restore instead of training")
    hvp_batch: int = setting(256, "training images the curvature is measured on", ge=1)
    top_k: int = setting(10, "Hessian eigenvalues found by Lanczos", ge=1)
    lanczos_iterations: int = setting(30, "Lanczos steps for the top eigenvalues", ge=2)
    density_vectors: int = setting(2, "random starts of stochastic Lanczos quadrature", ge=1)
    density_iterations: int = setting(20, "Lanczos steps per start of the density", ge=2)
    slice_points: int = setting(21, "points of the 1-D slice (the 2-D slice uses half as many per axis)", ge=3)
    slice_radius: float = setting(1.0, "the slices span [-radius, radius] in filter-normalised units", gt=0)
    hvp_costs: bool = setting(True, "time each order's Hessian-vector product (five more programs per network)")
    hvp_samples: int = setting(30, "timed samples per order at most (fewer once within 5%)", ge=5)
    seed: int = setting(0, "PRNG seed", ge=0)

    def check(self) -> None:
        """Refuses an empty ``networks`` and fewer Lanczos iterations than ``top_k`` (raises JaxdlError)."""
        if not self.networks:
            raise JaxdlError("setting networks needs at least one of mlp, cnn")
        if self.lanczos_iterations < self.top_k:
            raise JaxdlError(f"setting lanczos_iterations ({self.lanczos_iterations}) must be >= top_k ({self.top_k})")


# mnist_vae
@dataclasses.dataclass(frozen=True)
class VAEConfig(EngineSettings):
    """Settings of ``mnist-vae``: a (conditional) variational autoencoder on MNIST."""

    data: str = setting("", "local copy of MNIST (folder, .tar.gz, IDX folder); empty: $JAXDL_DATA_DIR or TFDS")
    latents: int = setting(20, "latent dimensions (2 draws the latent space)", ge=1)
    hidden: int = setting(400, "hidden units of encoder and decoder", ge=1)
    conditional: bool = setting(False, "condition on the digit, so a chosen digit can be generated")
    epochs: int = setting(10, "training epochs", ge=1)
    batch_size: int = setting(32, "examples per step", ge=1)
    recipe: Literal["improved", "tutorial"] = setting(
        "improved",
        "improved: Adam with a one-cycle learning-rate schedule peaking at peak_lr; tutorial: Adam at a constant lr",
    )
    lr: float = setting(1e-3, "Adam learning rate (tutorial recipe)", gt=0, applies_if=("recipe", "tutorial"))
    peak_lr: float = setting(
        3e-3, "peak of the one-cycle learning-rate schedule (improved recipe)", gt=0, applies_if=("recipe", "improved")
    )

    def fixed_length(self) -> str | None:
        if self.recipe == "improved":
            return "the improved recipe's one-cycle learning-rate schedule spans the epochs the run began with"
        return None

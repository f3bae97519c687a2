"""Tutorial 4's scalar autodiff engine, in the tutorial's shape, plus forward mode with dual numbers.

Reverse mode: every ``Scalar`` remembers the inputs it came from and a
closure that, given its own gradient, adds its contribution to theirs.
``backward()`` orders the graph topologically (iteratively, so deep graphs
hit no recursion limit) and runs those closures from the output back. Leaf
gradients accumulate, as in PyTorch, until ``zero_grad``; the gradients of
intermediate nodes are reset on every ``backward()``, so calling it again
after ``zero_grad`` gives the same result.

Forward mode: a ``Dual`` carries a value and a tangent (its derivative along
one input direction); one forward pass gives one directional derivative, so a
gradient of n inputs costs n passes, where reverse mode needs one.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from jaxdl.errors import JaxdlError

Number = int | float


class Scalar:
    """A float in a computation graph, with the gradient of the output with respect to it."""

    __slots__ = ("data", "grad", "_backward", "_prev", "_op")

    def __init__(self, data: Number, _backward: Callable[[], None] | None = None, _prev: tuple = (), _op: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._backward = _backward
        self._prev = _prev
        self._op = _op  # the operation that made this node ("" for a leaf), for draw_graph

    def __repr__(self) -> str:
        return f"Scalar(data={self.data}, grad={self.grad})"

    def backward(self) -> None:
        """Fills ``.grad`` of every node this one depends on with d(self)/d(node)."""
        order: list[Scalar] = []
        visited: set[int] = set()
        stack: list[tuple[Scalar, bool]] = [(self, False)]
        while stack:  # iterative post-order depth-first search
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((parent, False) for parent in node._prev if id(parent) not in visited)
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            if node._backward is not None:
                node._backward()

    # Operators build the graph through the Function classes below.
    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

    def __sub__(self, other):
        return Add.apply(self, Neg.apply(other))

    def __rsub__(self, other):
        return Add.apply(other, Neg.apply(self))

    def __pow__(self, exponent: Number):
        return Pow.apply(self, exponent=exponent)

    def __truediv__(self, other):
        return Mul.apply(self, Pow.apply(other, exponent=-1))

    def __rtruediv__(self, other):
        return Mul.apply(other, Pow.apply(self, exponent=-1))

    def relu(self):
        return ReLU.apply(self)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)


def _as_scalar(value) -> Scalar:
    return value if isinstance(value, Scalar) else Scalar(value)


class Function(ABC):
    """An operation: ``forward`` computes the value, ``backward`` adds input gradients from the output's."""

    @staticmethod
    @abstractmethod
    def forward(*inputs: Scalar, **options) -> float: ...

    @staticmethod
    @abstractmethod
    def backward(*inputs: Scalar, output: Scalar, **options) -> None: ...

    @classmethod
    def apply(cls, *args, **options) -> Scalar:
        inputs = tuple(_as_scalar(a) for a in args)
        op = cls.__name__.lower() + "".join(f" {v}" for v in options.values())  # "pow 2"
        output = Scalar(cls.forward(*inputs, **options), _prev=inputs, _op=op)
        output._backward = lambda: cls.backward(*inputs, output=output, **options)
        return output


class Add(Function):
    @staticmethod
    def forward(a, b):
        return a.data + b.data

    @staticmethod
    def backward(a, b, output):
        a.grad += output.grad
        b.grad += output.grad


class Mul(Function):
    @staticmethod
    def forward(a, b):
        return a.data * b.data

    @staticmethod
    def backward(a, b, output):
        a.grad += b.data * output.grad
        b.grad += a.data * output.grad


class Neg(Function):
    @staticmethod
    def forward(a):
        return -a.data

    @staticmethod
    def backward(a, output):
        a.grad -= output.grad


class Pow(Function):
    """a ** exponent for a constant exponent."""

    @staticmethod
    def forward(a, exponent):
        try:
            return a.data**exponent
        except OverflowError:  # Python raises where IEEE arithmetic gives infinity; follow IEEE
            return -math.inf if a.data < 0 and float(exponent) % 2 == 1 else math.inf

    @staticmethod
    def backward(a, output, exponent):
        a.grad += exponent * a.data ** (exponent - 1) * output.grad


class ReLU(Function):
    @staticmethod
    def forward(a):
        return a.data if a.data > 0 else 0.0

    @staticmethod
    def backward(a, output):
        a.grad += output.grad if a.data > 0 else 0.0


class Exp(Function):
    @staticmethod
    def forward(a):
        return math.exp(a.data)

    @staticmethod
    def backward(a, output):
        a.grad += output.data * output.grad


class Log(Function):
    @staticmethod
    def forward(a):
        return math.log(a.data)

    @staticmethod
    def backward(a, output):
        a.grad += output.grad / a.data


class Tanh(Function):
    @staticmethod
    def forward(a):
        return math.tanh(a.data)

    @staticmethod
    def backward(a, output):
        a.grad += (1.0 - output.data**2) * output.grad


class Sigmoid(Function):
    @staticmethod
    def forward(a):
        x = a.data
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))

    @staticmethod
    def backward(a, output):
        a.grad += output.data * (1.0 - output.data) * output.grad


# ------------------------------------------------------------------ forward mode


class Dual:
    """value + tangent * epsilon with epsilon^2 = 0: forward-mode differentiation of scalar code."""

    __slots__ = ("value", "tangent")

    def __init__(self, value: Number, tangent: Number = 0.0):
        self.value, self.tangent = float(value), float(tangent)

    def __repr__(self) -> str:
        return f"Dual(value={self.value}, tangent={self.tangent})"

    @staticmethod
    def lift(x) -> Dual:
        return x if isinstance(x, Dual) else Dual(x)

    def __add__(self, other):
        o = Dual.lift(other)
        return Dual(self.value + o.value, self.tangent + o.tangent)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.tangent)

    def __sub__(self, other):
        return self + (-Dual.lift(other))

    def __rsub__(self, other):
        return Dual.lift(other) + (-self)

    def __mul__(self, other):
        o = Dual.lift(other)
        return Dual(self.value * o.value, self.tangent * o.value + self.value * o.tangent)

    __rmul__ = __mul__

    def __pow__(self, exponent: Number):
        return Dual(self.value**exponent, exponent * self.value ** (exponent - 1) * self.tangent)

    def __truediv__(self, other):
        return self * Dual.lift(other) ** -1

    def __rtruediv__(self, other):
        return Dual.lift(other) * self**-1

    def _chain(self, value: float, derivative: float) -> Dual:
        return Dual(value, derivative * self.tangent)

    def relu(self):
        return self._chain(max(self.value, 0.0), 1.0 if self.value > 0 else 0.0)

    def exp(self):
        e = math.exp(self.value)
        return self._chain(e, e)

    def log(self):
        return self._chain(math.log(self.value), 1.0 / self.value)

    def tanh(self):
        t = math.tanh(self.value)
        return self._chain(t, 1.0 - t * t)

    def sigmoid(self):
        s = Sigmoid.forward(Scalar(self.value))
        return self._chain(s, s * (1.0 - s))


def gradient_by_duals(f: Callable[..., Dual], xs: Sequence[Number]) -> list[float]:
    """The gradient of scalar ``f(*xs)`` by forward mode: one pass per input."""
    grads = []
    for i in range(len(xs)):
        duals = [Dual(x, 1.0 if j == i else 0.0) for j, x in enumerate(xs)]
        grads.append(f(*duals).tangent)
    return grads


def reverse_gradient(f: Callable[..., Scalar], xs: Sequence[Number]) -> list[float]:
    """The gradient of scalar ``f(*xs)`` by reverse mode: one forward and one backward pass."""
    leaves = [Scalar(x) for x in xs]
    f(*leaves).backward()
    return [leaf.grad for leaf in leaves]


# ------------------------------------------------------------------ drawing


def _graph(root: Scalar) -> list[Scalar]:
    """Every node ``root`` depends on, itself included, each once, inputs before outputs."""
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            order.append(node)
            stack.extend(node._prev)
    return order[::-1]


def to_dot(root: Scalar, labels: dict[int, str] | None = None, max_nodes: int = 500) -> str:
    """The expression graph of ``root`` in Graphviz's DOT language, as micrograd's ``draw_dot``.

    Each value is a box showing its data and gradient (call ``root.backward()``
    first to see gradients); each operation is an ellipse between its inputs and
    its output. ``labels`` names nodes by ``id(node)`` (e.g. ``{id(w): "w"}``).
    A graph over ``max_nodes`` values is refused: the picture would be unreadable
    (the MNIST network's has about 150,000).
    """
    nodes = _graph(root)
    if len(nodes) > max_nodes:
        raise JaxdlError(f"the graph has {len(nodes)} values, more than max_nodes={max_nodes} can show readably")
    labels = labels or {}
    # At most 9 x 6 inches: a notebook or a page shows the whole graph, scaled down if need be.
    lines = ["digraph scalar {", '  rankdir=LR; size="9,6";', '  node [fontname="Helvetica", fontsize=11];']
    for node in nodes:
        name = re.sub(r'([|{}<>"\\])', r"\\\1", labels.get(id(node), ""))  # record-label syntax, escaped
        text = f"{name + ' | ' if name else ''}data {node.data:.4g} | grad {node.grad:.4g}"
        lines.append(f'  v{id(node)} [shape=record, label="{{ {text} }}"];')
        if node._op:
            lines.append(f'  v{id(node)}op [label="{node._op}"];')
            lines.append(f"  v{id(node)}op -> v{id(node)};")
            lines.extend(f"  v{id(parent)} -> v{id(node)}op;" for parent in node._prev)
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_graph(root: Scalar, path: str | None = None, labels: dict[int, str] | None = None) -> str:
    """The expression graph of ``root`` as SVG text, drawn by Graphviz's ``dot`` (see :func:`to_dot`).

    Writes it to ``path`` too when given. Raises JaxdlError in one line when
    Graphviz is not installed.
    """
    dot = shutil.which("dot")
    if dot is None:
        raise JaxdlError(
            "drawing the graph needs Graphviz's dot program, which is not installed "
            "(apt install graphviz, brew install graphviz or conda install graphviz); to_dot() gives the DOT text"
        )
    done = subprocess.run([dot, "-Tsvg"], input=to_dot(root, labels), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise JaxdlError(
            f"Graphviz's dot failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}"
        )
    if path is not None:
        from jaxdl.rundir import atomic_file

        with atomic_file(path, "w") as f:
            f.write(done.stdout)
    return done.stdout


# ------------------------------------------------------------------ networks


class Module:
    def parameters(self) -> list[Scalar]:
        return []

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


def _draw(rng: random.Random, nin: int, init: str) -> float:
    if init == "tutorial":  # the tutorial's random.uniform(-1, 1)
        return rng.uniform(-1.0, 1.0)
    if init == "torch":
        bound = 1.0 / math.sqrt(nin)
        return rng.uniform(-bound, bound)
    if init == "he":
        return rng.gauss(0.0, math.sqrt(2.0 / nin))
    raise ValueError(f"unknown init {init!r}; use 'tutorial', 'torch' or 'he'")


class Neuron(Module):
    def __init__(self, nin: int, nonlin: bool = True, *, rng: random.Random, init: str = "tutorial"):
        self.w = [Scalar(_draw(rng, nin, init)) for _ in range(nin)]
        self.b = Scalar(0.0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence) -> Scalar:
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Scalar]:
        return [*self.w, self.b]


class Layer(Module):
    def __init__(self, nin: int, nout: int, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence) -> list[Scalar]:
        return [neuron(x) for neuron in self.neurons]

    def parameters(self) -> list[Scalar]:
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Module):
    """The tutorial's MLP(nin, nouts): ReLU after every layer but the last.

    Args:
      nin: inputs.
      nouts: layer widths.
      seed: seed of this network's own ``random.Random`` (no global RNG).
      init: "tutorial" (uniform in [-1, 1]), "torch" (PyTorch's default) or "he".
    """

    def __init__(self, nin: int, nouts: Sequence[int], *, seed: int = 0, init: str = "tutorial"):
        rng = random.Random(seed)
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != last, rng=rng, init=init) for i in range(len(nouts))]

    def __call__(self, x: Sequence) -> list[Scalar]:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Scalar]:
        return [p for layer in self.layers for p in layer.parameters()]

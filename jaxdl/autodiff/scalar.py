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
    """A float in a computation graph, with the gradient of the output with respect to it.

    Build graphs from leaves with ``+ - * / **`` and the methods below; call :meth:`backward` on the
    output. The underscored arguments are set by the operations, not by users.

    Args:
      data: the value.

    Attributes:
      data: the value, a Python float.
      grad: d(output)/d(this node) after the output's :meth:`backward`; 0.0 before.

    Example:
      >>> x = Scalar(3.0)
      >>> y = x * x + x
      >>> y.backward()
      >>> y.data, x.grad
      (12.0, 7.0)
    """

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
        """max(self, 0) as a new node.

        Returns:
          A :class:`Scalar` whose backward passes the gradient through where ``self.data > 0``.
        """
        return ReLU.apply(self)

    def exp(self):
        """exp(self) as a new node.

        Returns:
          A :class:`Scalar`; its local derivative is its own value.
        """
        return Exp.apply(self)

    def log(self):
        """The natural log of ``self`` as a new node (``self.data`` must be positive).

        Returns:
          A :class:`Scalar`; its local derivative is 1 / ``self.data``.
        """
        return Log.apply(self)

    def tanh(self):
        """tanh(self) as a new node.

        Returns:
          A :class:`Scalar`; its local derivative is 1 - tanh^2.
        """
        return Tanh.apply(self)

    def sigmoid(self):
        """1 / (1 + exp(-self)) as a new node, computed without overflow.

        Returns:
          A :class:`Scalar`; its local derivative is s (1 - s).
        """
        return Sigmoid.apply(self)


def _as_scalar(value) -> Scalar:
    return value if isinstance(value, Scalar) else Scalar(value)


class Function(ABC):
    """An operation: ``forward`` computes the value, ``backward`` adds input gradients from the output's.

    Subclasses define both as static methods; :meth:`apply` makes the output node and ties them to it.
    """

    @staticmethod
    @abstractmethod
    def forward(*inputs: Scalar, **options) -> float:
        """The operation's value from its inputs' ``.data``.

        Args:
          *inputs: the operand nodes.
          **options: constant settings of the operation (``exponent`` for :class:`Pow`).

        Returns:
          The output's value, a float.
        """

    @staticmethod
    @abstractmethod
    def backward(*inputs: Scalar, output: Scalar, **options) -> None:
        """Adds each input's share of ``output.grad`` to its ``.grad`` (the chain rule, one step).

        Args:
          *inputs: the operand nodes, in ``forward``'s order.
          output: the node ``forward`` made; its ``.grad`` is final when this runs.
          **options: the settings ``forward`` had.
        """

    @classmethod
    def apply(cls, *args, **options) -> Scalar:
        """Runs the operation on ``args`` and returns the output node, wired for :meth:`Scalar.backward`.

        Args:
          *args: the operands, :class:`Scalar` nodes or plain numbers (made into leaves).
          **options: constant settings passed to ``forward`` and ``backward``.

        Returns:
          A new :class:`Scalar` recording its inputs and operation.
        """
        inputs = tuple(_as_scalar(a) for a in args)
        op = cls.__name__.lower() + "".join(f" {v}" for v in options.values())  # "pow 2"
        output = Scalar(cls.forward(*inputs, **options), _prev=inputs, _op=op)
        output._backward = lambda: cls.backward(*inputs, output=output, **options)
        return output


class Add(Function):
    """a + b: each input receives the output's gradient unchanged."""

    @staticmethod
    def forward(a, b):
        return a.data + b.data

    @staticmethod
    def backward(a, b, output):
        a.grad += output.grad
        b.grad += output.grad


class Mul(Function):
    """a * b: each input receives the output's gradient times the other input."""

    @staticmethod
    def forward(a, b):
        return a.data * b.data

    @staticmethod
    def backward(a, b, output):
        a.grad += b.data * output.grad
        b.grad += a.data * output.grad


class Neg(Function):
    """-a: the input receives the output's gradient negated."""

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
    """max(a, 0): the gradient passes where a > 0."""

    @staticmethod
    def forward(a):
        return a.data if a.data > 0 else 0.0

    @staticmethod
    def backward(a, output):
        a.grad += output.grad if a.data > 0 else 0.0


class Exp(Function):
    """exp(a): the input receives exp(a) times the output's gradient."""

    @staticmethod
    def forward(a):
        return math.exp(a.data)

    @staticmethod
    def backward(a, output):
        a.grad += output.data * output.grad


class Log(Function):
    """log(a): the input receives the output's gradient divided by a."""

    @staticmethod
    def forward(a):
        return math.log(a.data)

    @staticmethod
    def backward(a, output):
        a.grad += output.grad / a.data


class Tanh(Function):
    """tanh(a): the input receives (1 - tanh(a)^2) times the output's gradient."""

    @staticmethod
    def forward(a):
        return math.tanh(a.data)

    @staticmethod
    def backward(a, output):
        a.grad += (1.0 - output.data**2) * output.grad


class Sigmoid(Function):
    """sigmoid(a): the input receives s (1 - s) times the output's gradient."""

    @staticmethod
    def forward(a):
        x = a.data
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))

    @staticmethod
    def backward(a, output):
        a.grad += output.data * (1.0 - output.data) * output.grad


# ------------------------------------------------------------------ forward mode


class Dual:
    """value + tangent * epsilon with epsilon^2 = 0: forward-mode differentiation of scalar code.

    Args:
      value: the primal value.
      tangent: its derivative along the chosen input direction (1.0 on the input being differentiated).

    Example: d/dx (x^2 + 3x) at x = 2 is 7.

      >>> x = Dual(2.0, 1.0)
      >>> x * x + 3 * x
      Dual(value=10.0, tangent=7.0)
    """

    __slots__ = ("value", "tangent")

    def __init__(self, value: Number, tangent: Number = 0.0):
        self.value, self.tangent = float(value), float(tangent)

    def __repr__(self) -> str:
        return f"Dual(value={self.value}, tangent={self.tangent})"

    @staticmethod
    def lift(x) -> Dual:
        """``x`` as a :class:`Dual`: a constant (tangent 0) unless it is one already.

        Args:
          x: a number or a :class:`Dual`.

        Returns:
          A :class:`Dual`.
        """
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
        """max(self, 0), with derivative 1 where the value is positive.

        Returns:
          A new :class:`Dual`.
        """
        return self._chain(max(self.value, 0.0), 1.0 if self.value > 0 else 0.0)

    def exp(self):
        """exp(self), with derivative exp(self).

        Returns:
          A new :class:`Dual`.
        """
        e = math.exp(self.value)
        return self._chain(e, e)

    def log(self):
        """log(self), with derivative 1 / self.

        Returns:
          A new :class:`Dual`.
        """
        return self._chain(math.log(self.value), 1.0 / self.value)

    def tanh(self):
        """tanh(self), with derivative 1 - tanh^2.

        Returns:
          A new :class:`Dual`.
        """
        t = math.tanh(self.value)
        return self._chain(t, 1.0 - t * t)

    def sigmoid(self):
        """sigmoid(self), with derivative s (1 - s).

        Returns:
          A new :class:`Dual`.
        """
        s = Sigmoid.forward(Scalar(self.value))
        return self._chain(s, s * (1.0 - s))


def gradient_by_duals(f: Callable[..., Dual], xs: Sequence[Number]) -> list[float]:
    """The gradient of scalar ``f(*xs)`` by forward mode: one pass per input.

    Args:
      f: a function of ``len(xs)`` numbers written with ``+ - * / **`` and the :class:`Dual` methods.
      xs: the point.

    Returns:
      ``[df/dx_0, ..., df/dx_{n-1}]``.

    Example:
      >>> gradient_by_duals(lambda a, b: a * b + b, [2.0, 3.0])
      [3.0, 3.0]
    """
    grads = []
    for i in range(len(xs)):
        duals = [Dual(x, 1.0 if j == i else 0.0) for j, x in enumerate(xs)]
        grads.append(f(*duals).tangent)
    return grads


def reverse_gradient(f: Callable[..., Scalar], xs: Sequence[Number]) -> list[float]:
    """The gradient of scalar ``f(*xs)`` by reverse mode: one forward and one backward pass.

    Args:
      f: a function of ``len(xs)`` numbers written with ``+ - * / **`` and the :class:`Scalar` methods.
      xs: the point.

    Returns:
      ``[df/dx_0, ..., df/dx_{n-1}]``, equal to :func:`gradient_by_duals`'s.

    Example:
      >>> reverse_gradient(lambda a, b: a * b + b, [2.0, 3.0])
      [3.0, 3.0]
    """
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
    its output.

    Args:
      root: the output node.
      labels: names by ``id(node)`` (e.g. ``{id(w): "w"}``), shown in the nodes' boxes.
      max_nodes: the most values drawn; a larger graph (the MNIST network's has about 150,000 values)
        would be unreadable.

    Returns:
      The DOT source, ending in a newline.

    Raises:
      JaxdlError: when the graph has more than ``max_nodes`` values.
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

    Args:
      root: the output node.
      path: where to write the SVG too (atomically), or None.
      labels: names by ``id(node)``, as for :func:`to_dot`.

    Returns:
      The SVG document.

    Raises:
      JaxdlError: in one line, when Graphviz is not installed or ``dot`` fails.
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
    """The base of :class:`Neuron`, :class:`Layer` and :class:`MLP`: a list of parameters and ``zero_grad``."""

    def parameters(self) -> list[Scalar]:
        """The module's trainable leaves.

        Returns:
          A list of :class:`Scalar` (empty for the base class).
        """
        return []

    def zero_grad(self) -> None:
        """Sets every parameter's ``.grad`` to 0 before the next ``backward()`` (leaf gradients accumulate)."""
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
    """One unit: relu(w . x + b), or w . x + b when ``nonlin`` is false.

    Args:
      nin: the number of inputs.
      nonlin: apply ReLU to the output.
      rng: the network's ``random.Random``, which draws the weights.
      init: "tutorial" (uniform in [-1, 1]), "torch" (PyTorch's default) or "he". The bias starts at 0.
    """

    def __init__(self, nin: int, nonlin: bool = True, *, rng: random.Random, init: str = "tutorial"):
        self.w = [Scalar(_draw(rng, nin, init)) for _ in range(nin)]
        self.b = Scalar(0.0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence) -> Scalar:
        """The unit's output for one input vector.

        Args:
          x: ``nin`` numbers or :class:`Scalar` nodes.

        Returns:
          A :class:`Scalar`.
        """
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Scalar]:
        """The weights then the bias.

        Returns:
          ``nin + 1`` :class:`Scalar` leaves.
        """
        return [*self.w, self.b]


class Layer(Module):
    """``nout`` neurons reading the same ``nin`` inputs.

    Args:
      nin: the number of inputs.
      nout: the number of neurons (outputs).
      **kwargs: passed to each :class:`Neuron` (``nonlin``, ``rng``, ``init``).
    """

    def __init__(self, nin: int, nout: int, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence) -> list[Scalar]:
        """Every neuron's output for one input vector.

        Args:
          x: ``nin`` numbers or :class:`Scalar` nodes.

        Returns:
          ``nout`` :class:`Scalar` nodes.
        """
        return [neuron(x) for neuron in self.neurons]

    def parameters(self) -> list[Scalar]:
        """Every neuron's parameters, neuron by neuron.

        Returns:
          A list of :class:`Scalar` leaves.
        """
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
        """The network's outputs for one input vector.

        Args:
          x: ``nin`` numbers or :class:`Scalar` nodes.

        Returns:
          One :class:`Scalar` per output unit (the last width in ``nouts``).

        Example:
          >>> net = MLP(2, [3, 1])
          >>> len(net([1.0, -1.0])), len(net.parameters())
          (1, 13)
        """
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Scalar]:
        """Every layer's parameters, input layer first.

        Returns:
          A list of :class:`Scalar` leaves.
        """
        return [p for layer in self.layers for p in layer.parameters()]

"""The scalar engines: random expression graphs through reverse mode, forward mode and jax.grad."""

import math
import re
import shutil
from xml.etree import ElementTree

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdl.autodiff.scalar import MLP, Dual, Scalar, draw_graph, gradient_by_duals, reverse_gradient, to_dot
from jaxdl.errors import JaxdlError

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

# Operations safe on every real input, so random graphs never leave the domain.
UNARY = {
    "neg": (lambda a: -a, lambda a: -a),
    "tanh": (lambda a: a.tanh(), jnp.tanh),
    "sigmoid": (lambda a: a.sigmoid(), jax.nn.sigmoid),
    "relu": (lambda a: a.relu(), jax.nn.relu),
    "exp_tanh": (lambda a: a.tanh().exp(), lambda a: jnp.exp(jnp.tanh(a))),
    "log1p_sq": (lambda a: (1 + a * a).log(), lambda a: jnp.log(1 + a * a)),
    "pow": (lambda a: (1 + a * a) ** 1.5, lambda a: (1 + a * a) ** 1.5),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / (1 + b * b), lambda a, b: a / (1 + b * b)),
}


def expressions(n_vars):
    leaves = st.one_of(
        st.integers(0, n_vars - 1).map(lambda i: ("var", i)),
        st.floats(-2, 2, allow_nan=False).map(lambda c: ("const", c)),
    )

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(sorted(UNARY)), children),
            st.tuples(st.sampled_from(sorted(BINARY)), children, children),
        )

    return st.recursive(leaves, extend, max_leaves=12)


def evaluate(expr, xs, engine):
    """Evaluates an expression with engine "jax" (jax.numpy) or "python" (Scalar or Dual inputs)."""
    kind = expr[0]
    if kind == "var":
        return xs[expr[1]]
    if kind == "const":
        # Constants become nodes of the inputs' kind, so every method exists.
        return expr[1] if engine == "jax" else type(xs[0])(expr[1])
    table = UNARY if kind in UNARY else BINARY
    fn = table[kind][1 if engine == "jax" else 0]
    return fn(*(evaluate(e, xs, engine) for e in expr[1:]))


@settings(max_examples=60, deadline=None)
@given(expressions(3), st.lists(st.floats(-1.5, 1.5).filter(lambda v: abs(v) > 1e-3), min_size=3, max_size=3))
def test_random_graphs_reverse_forward_and_jax_agree(expr, xs):
    def python_f(*args):
        return evaluate(expr, args, "python")

    reverse = reverse_gradient(python_f, xs)
    forward = gradient_by_duals(python_f, xs)
    with jax.enable_x64(True):
        expected = jax.grad(lambda v: jnp.asarray(evaluate(expr, list(v), "jax"), jnp.float64) + 0 * v[0])(
            jnp.asarray(xs, jnp.float64)
        )
    np.testing.assert_allclose(reverse, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(forward, expected, rtol=1e-6, atol=1e-9)


def test_backward_twice_after_zero_grad_gives_the_same_gradients():
    x, y = Scalar(0.7), Scalar(-1.3)
    z = (x * y).tanh() + x**2 / (1 + y * y)
    z.backward()
    first = (x.grad, y.grad)
    x.grad = y.grad = 0.0
    z.backward()
    assert (x.grad, y.grad) == first


def test_deep_graphs_need_no_recursion():
    x = Scalar(1.0)
    y = x
    for _ in range(50_000):
        y = y * 1.00001 + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.00001**50_000)


def test_scalar_mlp_gradients_match_jax():
    model = MLP(4, [5, 3], seed=1, init="torch")
    xs = [0.3, -0.2, 0.9, 0.1]
    target = [0.0, 1.0, 0.0]
    out = model(xs)
    loss = sum(((o - t) ** 2 for o, t in zip(out, target, strict=True)), Scalar(0.0))
    loss.backward()
    weights = [[[w.data for w in n.w] for n in layer.neurons] for layer in model.layers]
    biases = [[n.b.data for n in layer.neurons] for layer in model.layers]

    def jax_loss(ws, bs):
        h = jnp.asarray(xs)
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = jnp.asarray(w) @ h + jnp.asarray(b)
            h = jax.nn.relu(h) if i < len(ws) - 1 else h
        return jnp.sum((h - jnp.asarray(target)) ** 2)

    with jax.enable_x64(True):
        ws = [jnp.asarray(w, jnp.float64) for w in weights]
        bs = [jnp.asarray(b, jnp.float64) for b in biases]
        gw, gb = jax.grad(jax_loss, argnums=(0, 1))(ws, bs)
        assert float(jax_loss(ws, bs)) == pytest.approx(loss.data, rel=1e-12)
    for layer, g_w, g_b in zip(model.layers, gw, gb, strict=True):
        np.testing.assert_allclose([[w.grad for w in n.w] for n in layer.neurons], g_w, rtol=1e-6)
        np.testing.assert_allclose([n.b.grad for n in layer.neurons], g_b, rtol=1e-6)


def test_dual_numbers_differentiate_elementary_functions():
    for f, df, x in [
        (lambda a: a.exp(), math.exp, 0.4),
        (lambda a: a.log(), lambda v: 1 / v, 2.0),
        (lambda a: a.tanh(), lambda v: 1 - math.tanh(v) ** 2, -0.3),
        (lambda a: a**3, lambda v: 3 * v**2, 1.7),
    ]:
        assert f(Dual(x, 1.0)).tangent == pytest.approx(df(x), rel=1e-12)


def _small_graph():
    a, b = Scalar(2.0), Scalar(-3.0)
    d = (a * b + a.relu()) ** 2
    d.backward()
    return a, b, d


def test_to_dot_shows_each_value_and_gradient_and_operation():
    a, b, d = _small_graph()
    dot = to_dot(d, labels={id(a): "a", id(b): "b"})
    assert "{ a | data 2 | grad 16 }" in dot and "{ b | data -3 | grad -16 }" in dot  # dd/da = 2c (b + 1)
    assert "data 16 | grad 1" in dot
    assert {'label="mul"', 'label="add"', 'label="relu"', 'label="pow 2"'} <= set(
        re.findall(r'label="[a-z 0-9]+"', dot)
    )


def test_to_dot_refuses_a_graph_too_big_to_read():
    total = sum((Scalar(float(i)) for i in range(300)), Scalar(0.0))
    with pytest.raises(JaxdlError, match="more than max_nodes=500"):
        to_dot(total)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (CI installs it)")
def test_draw_graph_renders_svg_through_graphviz(tmp_path):
    a, b, d = _small_graph()
    svg = draw_graph(d, tmp_path / "graph.svg", labels={id(a): "a"})
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "grad 16" in svg and (tmp_path / "graph.svg").read_text() == svg


def test_draw_graph_without_graphviz_says_so_in_one_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(JaxdlError) as error:
        draw_graph(_small_graph()[2])
    message = str(error.value)
    assert "Graphviz's dot program, which is not installed" in message and "\n" not in message

"""Tableaux: construction checks, and every method against the rooted-tree order conditions."""
from functools import lru_cache
from itertools import product
from math import prod

import pytest

from graphode.solvers.tableaux import METHODS, ButcherTableau, get_tableau


def _partitions(n, largest=None):
    largest = n if largest is None else largest
    if n == 0:
        yield []
        return
    for part in range(min(n, largest), 0, -1):
        for rest in _partitions(n - part, part):
            yield [part] + rest


@lru_cache(maxsize=None)
def rooted_trees(order):
    """All rooted trees with ``order`` nodes; a tree is the sorted tuple of its subtrees."""
    if order == 1:
        return ((),)
    found = set()
    for parts in _partitions(order - 1):
        for children in product(*(rooted_trees(p) for p in parts)):
            found.add(tuple(sorted(children)))
    return tuple(sorted(found))


def _size(tree):
    return 1 + sum(_size(c) for c in tree)


def _gamma(tree):
    return _size(tree) * prod(_gamma(c) for c in tree)


def _stage_vector(tab, tree):
    """u(tree)_i = prod over children c of (A u(c))_i."""
    s = tab.stages
    A = [list(row) + [0.0] * (s - len(row)) for row in ((),) + tab.a]
    u = [1.0] * s
    for child in tree:
        v = _stage_vector(tab, child)
        Av = [sum(A[i][j] * v[j] for j in range(s)) for i in range(s)]
        u = [x * y for x, y in zip(u, Av)]
    return u


def _residuals(tab, weights, order, theta=1.0):
    out = []
    for p in range(1, order + 1):
        for tree in rooted_trees(p):
            phi = sum(w * u for w, u in zip(weights, _stage_vector(tab, tree)))
            out.append(abs(phi - theta ** p / _gamma(tree)))
    return out


def test_tree_counts():
    assert [len(rooted_trees(p)) for p in range(1, 6)] == [1, 1, 2, 4, 9]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_order_conditions(name):
    tab = METHODS[name]
    assert max(_residuals(tab, tab.b, tab.order)) < 1e-13
    # ... and the method is not of higher order than it claims (the claim is sharp).
    if tab.order < 5:
        assert max(_residuals(tab, tab.b, tab.order + 1)) > 1e-6


@pytest.mark.parametrize("name", [n for n, t in METHODS.items() if t.adaptive])
def test_embedded_order_conditions(name):
    tab = METHODS[name]
    b_hat = [b - e for b, e in zip(tab.b, tab.b_error)]
    assert max(_residuals(tab, b_hat, tab.error_order)) < 1e-13
    assert max(_residuals(tab, b_hat, tab.error_order + 1)) > 1e-6


@pytest.mark.parametrize("name", [n for n, t in METHODS.items() if t.dense is not None])
@pytest.mark.parametrize("theta", [0.1, 0.37, 0.5, 0.83])
def test_dense_output_is_fourth_order(name, theta):
    tab = METHODS[name]
    weights = [sum(c * theta ** (j + 1) for j, c in enumerate(row)) for row in tab.dense]
    assert max(_residuals(tab, weights, 4, theta)) < 1e-12


def test_fsal_last_stage_is_the_solution():
    for tab in METHODS.values():
        if tab.fsal:
            assert tab.a[-1] + (0.0,) == pytest.approx(tab.b, abs=1e-15)


@pytest.mark.parametrize("kwargs, message", [
    (dict(c=(0.0, 0.5), a=((0.4,),), b=(0.0, 1.0)), "row 1 of a sums to"),
    (dict(c=(0.0, 0.5), a=((0.5,),), b=(0.2, 0.7)), "b sums to"),
    (dict(c=(0.1, 0.5), a=((0.5,),), b=(0.0, 1.0)), "c[0] must be 0"),
    (dict(c=(0.0, 1.0), a=((1.0,),), b=(0.5, 0.5), b_error=(0.5, 0.4), error_order=1), "b_error sums"),
    (dict(c=(0.0, 1.0), a=((1.0,),), b=(0.5, 0.5), b_error=(0.5, -0.5)), "needs error_order"),
    (dict(c=(0.0, 0.5), a=((0.5,),), b=(0.0, 1.0), fsal=True), "fsal"),
    (dict(c=(0.0, 0.5), a=((0.25, 0.25),), b=(0.0, 1.0)), "row 1 of a has 2 entries"),
])
def test_invalid_tableaux_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match="invalid Butcher tableau 'bad'.*" + message.replace("[", r"\[").replace("]", r"\]")):
        ButcherTableau(name="bad", order=1, **kwargs)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'dopri6'; valid methods are: .*dopri5.*tsit5"):
        get_tableau("dopri6")

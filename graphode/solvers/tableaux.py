"""Butcher tableaux of explicit Runge-Kutta methods, as validated frozen data.

Every explicit RK method in graphode is one :class:`ButcherTableau`: its coefficients, its
order and (for adaptive methods) the weights of an embedded lower-order solution. One generic
stepping routine (:mod:`graphode.solvers.rk`) serves them all.

Coefficients are given as exact fractions where the method has them (converted to float64
once, at import), and as published decimals where it does not (Tsitouras 2011).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction as F
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["ButcherTableau", "METHODS", "FIXED_GRID_METHODS", "get_tableau"]

_TOL = 1e-12


def _floats(xs: Sequence) -> Tuple[float, ...]:
    return tuple(float(x) for x in xs)


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method.

    Args:
        name: the method's name, as passed to ``method=``.
        order: the order of the propagated solution ``b``.
        c: stage times, ``c[0] == 0``.
        a: strictly lower-triangular stage matrix, given row by row (row ``i`` has ``i`` entries).
        b: weights of the propagated solution.
        b_error: ``b - b_hat`` where ``b_hat`` are the weights of the embedded solution;
            ``None`` for methods without an error estimate (fixed steps only).
        error_order: order of the embedded solution (drives the step-size controller).
        fsal: first-same-as-last; the last stage is ``f(t + h, y_next)`` and is reused as the
            first stage of the next step.
        dense: optional continuous extension: ``dense[i][j]`` is the coefficient of
            ``theta ** (j + 1)`` in the weight polynomial ``b_i(theta)``, so that
            ``y(t + theta h) = y + h sum_i b_i(theta) k_i``. Methods without one use cubic
            Hermite interpolation.
    """

    name: str
    order: int
    c: Tuple[float, ...]
    a: Tuple[Tuple[float, ...], ...]
    b: Tuple[float, ...]
    b_error: Optional[Tuple[float, ...]] = None
    error_order: Optional[int] = None
    fsal: bool = False
    dense: Optional[Tuple[Tuple[float, ...], ...]] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        s = self.stages
        problems = []
        if len(self.c) != s or len(self.a) != s - 1:
            problems.append(f"c has {len(self.c)} entries and a has {len(self.a)} rows for {s} stages")
        if abs(self.c[0]) > _TOL:
            problems.append("c[0] must be 0 for an explicit method")
        for i, row in enumerate(self.a, start=1):
            if len(row) != i:
                problems.append(f"row {i} of a has {len(row)} entries, expected {i}")
            elif abs(sum(row) - self.c[i]) > _TOL:
                problems.append(f"row {i} of a sums to {sum(row)!r}, not c[{i}] = {self.c[i]!r}")
        if abs(sum(self.b) - 1.0) > _TOL:
            problems.append(f"b sums to {sum(self.b)!r}, not 1")
        if self.b_error is not None:
            if len(self.b_error) != s:
                problems.append(f"b_error has {len(self.b_error)} entries for {s} stages")
            elif abs(sum(self.b_error)) > _TOL:
                problems.append(f"b_error sums to {sum(self.b_error)!r}, not 0")
            if self.error_order is None:
                problems.append("an embedded method needs error_order")
        if self.fsal and (abs(self.c[-1] - 1.0) > _TOL or any(
                abs(x - y) > _TOL for x, y in zip(self.a[-1] + (0.0,), self.b))):
            problems.append("fsal needs the last row of a to equal b and c[-1] == 1")
        if self.dense is not None:
            if len(self.dense) != s:
                problems.append(f"dense has {len(self.dense)} rows for {s} stages")
            elif any(abs(sum(row) - bi) > 1e-10 for row, bi in zip(self.dense, self.b)):
                problems.append("dense output at theta=1 does not reproduce b")
        if problems:
            raise ValueError(f"invalid Butcher tableau {self.name!r}: " + "; ".join(problems))

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        """Whether the tableau carries an embedded error estimate."""
        return self.b_error is not None


def _tableau(name, order, c, a, b, b_hat=None, error_order=None, fsal=False, dense=None):
    b_error = None if b_hat is None else [bi - bh for bi, bh in zip(b, b_hat)]
    return ButcherTableau(
        name=name, order=order, c=_floats(c), a=tuple(_floats(row) for row in a), b=_floats(b),
        b_error=None if b_error is None else _floats(b_error), error_order=error_order,
        fsal=fsal, dense=None if dense is None else tuple(_floats(r) for r in dense))


def _quartic_dense(b: Sequence[float], mid: Sequence[float]) -> List[List[float]]:
    """The quartic continuous extension through ``y0``, ``y1``, ``y(1/2)``, ``f0`` and ``f1``,
    as weight polynomials (``mid`` are the weights of ``y(1/2)``; the first and last stages
    must be ``f0`` and ``f1``, i.e. an FSAL method).

    In increments from ``y0`` the quartic is ``(y1 - y0) (-5 t^2 + 14 t^3 - 8 t^4) + (y_mid - y0)
    (16 t^2 - 32 t^3 + 16 t^4) + h f0 (t - 4 t^2 + 5 t^3 - 2 t^4) + h f1 (t^2 - 3 t^3 + 2 t^4)``.
    """
    d1, dm, g0, g1 = (0, -5, 14, -8), (0, 16, -32, 16), (1, -4, 5, -2), (0, 1, -3, 2)
    last = len(b) - 1
    return [[d1[j] * b[i] + dm[j] * mid[i] + g0[j] * (i == 0) + g1[j] * (i == last)
             for j in range(4)] for i in range(len(b))]


EULER = _tableau("euler", 1, c=[0], a=[], b=[1])
MIDPOINT = _tableau("midpoint", 2, c=[0, F(1, 2)], a=[[F(1, 2)]], b=[0, 1])
HEUN2 = _tableau("heun2", 2, c=[0, 1], a=[[1]], b=[F(1, 2), F(1, 2)])
# Heun's method with Euler as the embedded first-order solution (torchdiffeq's adaptive_heun).
ADAPTIVE_HEUN = _tableau("adaptive_heun", 2, c=[0, 1], a=[[1]], b=[F(1, 2), F(1, 2)],
                         b_hat=[1, 0], error_order=1)
HEUN3 = _tableau("heun3", 3, c=[0, F(1, 3), F(2, 3)], a=[[F(1, 3)], [0, F(2, 3)]],
                 b=[F(1, 4), 0, F(3, 4)])
# torchdiffeq's "rk4" is Kutta's 3/8 rule; graphode keeps that meaning so code moves over
# unchanged. The classic tableau is "rk4_classic".
RK4 = _tableau("rk4", 4, c=[0, F(1, 3), F(2, 3), 1],
               a=[[F(1, 3)], [F(-1, 3), 1], [1, -1, 1]], b=[F(1, 8), F(3, 8), F(3, 8), F(1, 8)])
RK4_CLASSIC = _tableau("rk4_classic", 4, c=[0, F(1, 2), F(1, 2), 1],
                       a=[[F(1, 2)], [0, F(1, 2)], [0, 0, 1]], b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)])
BOSH3 = _tableau("bosh3", 3, c=[0, F(1, 2), F(3, 4), 1],
                 a=[[F(1, 2)], [0, F(3, 4)], [F(2, 9), F(1, 3), F(4, 9)]],
                 b=[F(2, 9), F(1, 3), F(4, 9), 0], b_hat=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)],
                 error_order=2, fsal=True)


def _dopri5_dense():
    """Shampine's (1986) continuous extension of Dormand-Prince 5(4), as weight polynomials.

    Hairer's dense output reads ``y(theta) = y0 + theta (r2 + (1 - theta) (r3 + theta (r4 +
    (1 - theta) r5)))`` with ``r2 = h B``, ``r3 = h (k1 - B)``, ``r4 = h (2 B - k1 - k7)`` and
    ``r5 = h D``; expanding in powers of theta gives one polynomial per stage.
    """
    b = [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0]
    d = [F(-12715105075, 11282082432), 0, F(87487479700, 32700410799),
         F(-10690763975, 1880347072), F(701980252875, 199316789632),
         F(-1453857185, 822651844), F(69997945, 29380423)]
    rows = []
    for i in range(7):
        e1, e7 = int(i == 0), int(i == 6)
        # theta B + theta(1-theta)(e1 - B) + theta^2 (1-theta)(2B - e1 - e7) + theta^2 (1-theta)^2 D
        p = [F(0)] * 5  # coefficients of theta^1 .. theta^5 (theta^5 cancels)
        p[0] += b[i] + (e1 - b[i])
        p[1] += -(e1 - b[i]) + (2 * b[i] - e1 - e7) + d[i]
        p[2] += -(2 * b[i] - e1 - e7) - 2 * d[i]
        p[3] += d[i]
        rows.append(p[:4])
    return rows


DOPRI5 = _tableau(
    "dopri5", 5,
    c=[0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1],
    a=[[F(1, 5)],
       [F(3, 40), F(9, 40)],
       [F(44, 45), F(-56, 15), F(32, 9)],
       [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
       [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
       [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)]],
    b=[F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0],
    b_hat=[F(5179, 57600), 0, F(7571, 16695), F(393, 640), F(-92097, 339200), F(187, 2100),
           F(1, 40)],
    error_order=4, fsal=True, dense=_dopri5_dense())

# Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption", Comput. Math. Appl. 62 (2011) 770-775: published decimals, with the error
# weights b - b_hat and the free interpolant of the paper (r-coefficients).
_TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
            -3.290069515436081, 2.324710524099774, 0.0]
_TSIT5_B_ERROR = [-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995,
                  -0.1447110071732629, 0.5823571654525552, -0.45808210592918697, 1.0 / 66.0]
TSIT5 = ButcherTableau(
    name="tsit5", order=5,
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=((0.161,),
       (-0.008480655492356989, 0.335480655492357),
       (2.8971530571054935, -6.359448489975075, 4.3622954328695815),
       (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
       (5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
        -0.028269050394068383),
       tuple(_TSIT5_B[:6])),
    b=tuple(_TSIT5_B), b_error=tuple(_TSIT5_B_ERROR), error_order=4, fsal=True,
    dense=((1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216),
           (0.0, 0.1317, -0.2234, 0.1017),
           (0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253),
           (0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902),
           (0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928),
           (0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661),
           (0.0, 1.5, -4.0, 2.5)))

# Fehlberg's RKF1(2) pair (NASA TR R-315, 1969), propagating the second-order solution with the
# first-order one as the error estimate, as torchdiffeq's "fehlberg2" does.
FEHLBERG2 = _tableau("fehlberg2", 2, c=[0, F(1, 2), 1], a=[[F(1, 2)], [F(1, 256), F(255, 256)]],
                     b=[F(1, 512), F(255, 256), F(1, 512)], b_hat=[F(1, 256), F(255, 256), 0],
                     error_order=1)

# Prince and Dormand, "High order embedded Runge-Kutta formulae", J. Comput. Appl. Math. 7
# (1981) 67-75: RK8(7)13M, as published decimals (torchdiffeq's "dopri8"). The 14th stage is
# f at the new solution, reused as the next step's first (FSAL).
_DOPRI8_B = [0.041747491141530244, 0.0, 0.0, 0.0, 0.0, -0.05545232861123931,
             0.2393128072011801, 0.703510669403443, -0.7597596138144609, 0.6605630309222863,
             0.15818748251012332, -0.2381095387528628, 0.25, 0.0]
_DOPRI8_B_ERROR = [0.012194277465176744, 0.0, 0.0, 0.0, 0.0, 0.7731539478765578,
                   -0.07192809284993823, -1.763834521196444, 1.787182038027448,
                   -0.7829855527544889, 0.07877188662899604, -0.28255398319730723, 0.25, 0.0]
# Weights of y(t + h/2), for the quartic interpolant (sum 1/2).
_DOPRI8_MID = [0.04103130360739393, 0.0, 0.0, 0.0, 0.0, 0.05100562801991382, 0.2388930677412202,
               0.3096870143996103, -0.2172325471755352, 0.07833405679331928,
               -0.0018614369715579948, 0.007072844202678841, 0.00690847373200576,
               -0.013838404349047373]
DOPRI8 = ButcherTableau(
    name="dopri8", order=8,
    c=(0.0, 1 / 18, 1 / 12, 1 / 8, 5 / 16, 3 / 8, 59 / 400, 93 / 200, 0.5648654513822595, 13 / 20,
       0.9246562776405044, 1.0, 1.0, 1.0),
    a=((1 / 18,),
       (1 / 48, 1 / 16),
       (1 / 32, 0.0, 3 / 32),
       (5 / 16, 0.0, -75 / 64, 75 / 64),
       (3 / 80, 0.0, 0.0, 3 / 16, 3 / 20),
       (0.04791013711111111, 0.0, 0.0, 0.11224871277777777, -0.02550567377777778,
        0.012846823888888888),
       (0.01691798978729228, 0.0, 0.0, 0.3878482784860432, 0.03597736985150033,
        0.19697021421566607, -0.17271385234050185),
       (0.0690957533591923, 0.0, 0.0, -0.6342479767288541, -0.16119757522460407,
        0.13865030945882525, 0.9409286140357562, 0.21163632648194397),
       (0.1835569968390454, 0.0, 0.0, -2.4687680843155926, -0.29128688781630047,
        -0.026473020233117376, 2.8478387641928005, 0.2813873314698498, 0.12374489986331466),
       (-1.2154248173958881, 0.0, 0.0, 16.672608665945774, 0.915741828416818,
        -6.056605804357471, -16.00357359415618, 14.849303086297663, -13.371575735289849,
        5.134182648179638),
       (0.25886091643826425, 0.0, 0.0, -4.774485785489205, -0.4350930137770325,
        -3.0494833320722416, 5.5779200399360995, 6.15583158986104, -5.062104586736939,
        2.193926173180679, 0.13462799865933495),
       (0.8224275996265075, 0.0, 0.0, -11.658673257277664, -0.7576221166909362,
        0.7139735881595816, 12.075774986890057, -2.127659113920403, 1.9901662070489554,
        -0.23428647154404028, 0.17589857770794226, 0.0),
       tuple(_DOPRI8_B[:13])),
    b=tuple(_DOPRI8_B), b_error=tuple(_DOPRI8_B_ERROR), error_order=7, fsal=True,
    dense=tuple(tuple(row) for row in _quartic_dense(_DOPRI8_B, _DOPRI8_MID)))

METHODS: Dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, HEUN2, HEUN3, RK4, RK4_CLASSIC, ADAPTIVE_HEUN, BOSH3,
                        DOPRI5, TSIT5, FEHLBERG2, DOPRI8)
}
# Methods that step on a fixed grid (the output times, or `step_size`), as in torchdiffeq.
FIXED_GRID_METHODS = frozenset(name for name, tab in METHODS.items() if not tab.adaptive)


def get_tableau(method: str) -> ButcherTableau:
    """The tableau for ``method``, or a ``ValueError`` listing the valid names."""
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown method {method!r}; valid methods are: {', '.join(sorted(METHODS))}") from None

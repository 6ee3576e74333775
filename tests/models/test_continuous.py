"""The continuous-depth GNNs of the literature: shapes, training, their fields' defining
properties, and gradients that agree in every mode."""
import pytest
import torch

from graphode.data import contextual_sbm
from graphode.models import ADGN, GRAND, GREAD, MLP, GRANDPlusPlus, GraphCON, HamGNN
from graphode.nn import AntisymmetricField, AttentionDiffusion, GDEConv
from graphode.nn.continuous import with_self_loops

D = torch.float64
SOLVER = dict(t_span=(0.0, 1.0), method="rk4", step_size=0.5)


@pytest.fixture(scope="module")
def data():
    return contextual_sbm(num_nodes=120, num_classes=3, num_features=8, num_val=20, num_test=20)


def build(name, solver=None):
    kw = dict(solver=solver) if solver is not None else {}
    return {"mlp": lambda: MLP(8, 16, 3),
            "grand-l": lambda: GRAND(8, 16, 3, heads=2, **kw),
            "grand-nl": lambda: GRAND(8, 16, 3, kind="nl", **kw),
            "grand++": lambda: GRANDPlusPlus(8, 16, 3, **kw),
            "graphcon": lambda: GraphCON(8, 16, 3, **kw),
            "graphcon-gat": lambda: GraphCON(8, 16, 3, coupling="gat", heads=2, **kw),
            "graphcon-linear": lambda: GraphCON(8, 16, 3, activation="identity",
                                                field_dropout=0.2, **kw),
            "a-dgn": lambda: ADGN(8, 16, 3, **kw),
            "hamgnn": lambda: HamGNN(8, 16, 3, **kw),
            "gread": lambda: GREAD(8, 16, 3, **kw),
            "gread-imex": lambda: GREAD(8, 16, 3, solver=dict(method="kencarp3"))}[name]()


NAMES = ["mlp", "grand-l", "grand-nl", "grand++", "graphcon", "graphcon-gat", "graphcon-linear",
         "a-dgn", "hamgnn",
         "gread", "gread-imex"]


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_a_falling_loss_in_five_epochs(data, name):
    torch.manual_seed(0)
    model = build(name)
    if hasattr(model, "use_labelled"):
        model.use_labelled(data.train_mask)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        assert out.shape == (120, 3)
        loss = torch.nn.functional.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_grand_attention_is_row_stochastic_and_l_differs_from_nl(data):
    torch.manual_seed(0)
    layer = AttentionDiffusion(8, heads=3).double()
    x = data.x.double()
    looped = with_self_loops(data.edge_index, 120)
    a = layer.attention(x, looped)
    rows = torch.zeros(120, dtype=D).index_add_(0, looped[1], a)
    assert torch.allclose(rows, torch.ones(120, dtype=D)) and (a > 0).all()
    # the field at the initial state is the same for both; after a solve they differ
    assert torch.allclose(layer(x, looped, a), layer(x, data.edge_index), atol=1e-12)
    gde = GDEConv(layer, **SOLVER, gradient="autograd")
    linear, nonlinear = gde(x, looped, a), gde(x, data.edge_index)
    assert not torch.allclose(linear, nonlinear, atol=1e-6)


def test_grand_plus_plus_puts_its_source_on_the_labelled_nodes_only(data):
    model = GRANDPlusPlus(8, 16, 3, solver=SOLVER)
    with pytest.raises(RuntimeError, match="use_labelled"):
        model(data.x, data.edge_index)
    model.use_labelled(data.train_mask)
    assert model.labelled.tolist() == data.train_mask.nonzero().view(-1).tolist()
    seen = []
    model.gde.register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs),
                                    with_kwargs=True)
    model.eval()
    model(data.x, data.edge_index)
    source = seen[0]["control_input"]
    assert source[~data.train_mask].abs().max() == 0 and source[data.train_mask].abs().max() > 0
    assert torch.allclose(source[data.train_mask].mean(0), torch.zeros(16), atol=1e-6)


def test_a_dgn_weight_is_antisymmetric_up_to_the_diffusion():
    field = AntisymmetricField(6, gamma=0.25)
    m = field.antisymmetric()
    assert torch.allclose(m + m.T, -0.5 * torch.eye(6), atol=1e-7)


TIGHT = dict(t_span=(0.0, 1.0), method="dopri5", rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["grand-l", "grand-nl", "grand++", "graphcon", "graphcon-linear",
                                  "a-dgn", "hamgnn", "gread", "gread-imex"])
def test_every_gradient_mode_gives_the_autograd_gradient(data, name):
    # GRAND-l's attention is computed from the encoded features by the field's own
    # parameters, and GRAND++'s source from the encoder: the adjoint and checkpoint modes
    # must carry both in exactly, neither dropping nor double-counting a path
    symplectic = name in ("graphcon", "graphcon-linear", "hamgnn")  # symplectic: no adjoint
    grads = {}
    modes = ["autograd", "checkpoint"] + ([] if symplectic else ["adjoint"])
    for mode in modes:
        torch.manual_seed(0)
        if symplectic:
            method = "leapfrog" if name == "hamgnn" else "symplectic_euler"
            model = build(name, dict(SOLVER, method=method, gradient=mode))
        elif name == "gread-imex":
            model = GREAD(8, 16, 3, solver=dict(TIGHT, method="kencarp3", rtol=1e-6,
                                                 atol=1e-8, gradient=mode))
        else:
            model = build(name, dict(TIGHT, gradient=mode))
        model = model.double().eval()
        if hasattr(model, "use_labelled"):
            model.use_labelled(data.train_mask)
        model(data.x.double(), data.edge_index).pow(2).sum().backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
    for mode in modes[1:]:
        tol = 1e-10 if mode == "checkpoint" else 1e-5
        assert torch.allclose(grads[mode], grads["autograd"], rtol=tol, atol=tol), mode


def test_graphcon_refuses_an_unknown_activation_naming_the_choices():
    with pytest.raises(ValueError, match="relu, tanh, identity"):
        GraphCON(8, 16, 3, activation="gelu")


def test_gread_imex_solves_the_same_equation_as_dopri5(data):
    torch.manual_seed(0)
    imex = GREAD(8, 16, 3, reaction="allen-cahn", rate=5.0,
                 solver=dict(method="kencarp3", rtol=1e-8, atol=1e-10)).double().eval()
    explicit = GREAD(8, 16, 3, reaction="allen-cahn", rate=5.0,
                     solver=dict(method="dopri5", rtol=1e-8, atol=1e-10)).double().eval()
    explicit.load_state_dict(imex.state_dict())
    x = data.x.double()
    assert torch.allclose(imex(x, data.edge_index), explicit(x, data.edge_index), atol=1e-6)

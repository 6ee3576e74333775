"""The node classification example: a short run on the built-in synthetic graph."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphode.models import GCDE, GCN, GDECR
from graphode.nn import SolverStatsRecorder

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import node_classification as nc  # noqa: E402

FIELDS = {"dataset", "model", "seeds", "splits", "test_acc_mean", "test_acc_std", "val_acc_mean",
          "test_acc_max_mean", "epochs", "nfe_forward", "nfe_backward", "seconds_per_epoch",
          "world_size", "batch_size", "num_nodes", "peak_rss_mb", "search", "first_seed"}


@pytest.mark.parametrize("model", ["gcn", "gcde", "cgnn", "gde-cr", "mlp", "grand-l", "grand-nl",
                                   "grand++", "graphcon", "a-dgn", "hamgnn", "gread"])
def test_loss_falls_in_five_epochs(model):
    args = nc.parse_args(["--dataset", "synthetic", "--model", model, "--epochs", "5"])
    data, name = nc.load(args)
    result = nc.run(args, data, int(data.y.max()) + 1, seed=0)
    assert name == "synthetic" and result["epochs"] == 5
    assert result["curves"]["loss"][-1] < result["curves"]["loss"][0]
    if model not in ("gcn", "mlp"):
        assert result["nfe_forward"] > 0


def test_script_writes_every_json_field(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "node_classification.py"),
                           "--dataset", "synthetic", "--model", "gcde", "--epochs", "5",
                           "--seeds", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert set(summary) == FIELDS
    assert summary["dataset"] == "synthetic" and summary["seeds"] == 2
    assert 0.0 <= summary["test_acc_mean"] <= 1.0 and summary["nfe_forward"] == 4  # one rk4 step
    assert summary["test_acc_mean"] <= summary["test_acc_max_mean"] <= 1.0
    assert "synthetic gcde: test accuracy" in proc.stdout


def test_heterophily_graphs_run_their_standard_splits(tmp_path, monkeypatch):
    import graphode.data.heterophily as het
    from tests.data.test_heterophily import write_texas_format
    write_texas_format(tmp_path / "root" / "heterophily" / "texas" / "raw")
    monkeypatch.setattr(het, "default_root", lambda: tmp_path / "cache")
    out = tmp_path / "out.json"
    summary = nc.main(["--dataset", "texas", "--root", str(tmp_path / "root"), "--model", "gcn",
                       "--epochs", "3", "--splits", "3", "--json", str(out)])
    assert set(summary) == FIELDS and json.loads(out.read_text()) == summary
    assert summary["dataset"] == "Texas" and summary["splits"] == summary["seeds"] == 3
    # split k trains on column k of the masks: the three runs see different test nodes
    data, _ = nc.load(nc.parse_args(["--dataset", "Texas", "--root", str(tmp_path / "root")]))
    views = nc.split_views(data, 3)
    assert [int(v.test_mask.nonzero()) for v in views] == [
        int(data.test_mask[:, k].nonzero()) for k in range(3)]
    with pytest.raises(SystemExit, match="--splits must lie in 1..10"):
        nc.split_views(data, 11)


def texas_data_seen(tmp_path, monkeypatch, runs):
    """Run the script on a tiny Texas-format graph once per ``(model, flags)`` in ``runs``;
    the graph each run trained on (a copy), and the stored graph."""
    import graphode.data.heterophily as het
    from tests.data.test_heterophily import write_texas_format
    root = tmp_path / "root"
    write_texas_format(root / "heterophily" / "texas" / "raw")
    monkeypatch.setattr(het, "default_root", lambda: tmp_path / "cache")
    seen, run = [], nc.run

    def spy(args, data, *rest):
        seen.append(data.clone())
        return run(args, data, *rest)

    monkeypatch.setattr(nc, "run", spy)
    for model, flags in runs:
        nc.main(["--dataset", "texas", "--root", str(root), "--model", model, "--epochs", "1",
                 "--splits", "1", *flags])
    return seen, het.load_heterophily("texas", root=str(root))


def test_features_are_row_normalised_unless_raw_is_asked_for(tmp_path, monkeypatch):
    (normalised, raw), stored = texas_data_seen(
        tmp_path, monkeypatch, [("gcn", []), ("mlp", ["--features", "raw"])])  # gcn's default
    stored = stored.x
    assert torch.equal(raw.x, stored) and raw.x.sum(-1).max() > 1
    assert torch.allclose(normalised.x, stored / stored.sum(-1, keepdim=True).clamp(min=1e-12))


def test_edges_can_be_made_undirected(tmp_path, monkeypatch):
    from torch_geometric.utils import is_undirected
    (kept, both), stored = texas_data_seen(
        tmp_path, monkeypatch, [("gcn", []), ("gcn", ["--edges", "undirected"])])
    assert torch.equal(kept.edge_index, stored.edge_index)
    assert not is_undirected(kept.edge_index) and is_undirected(both.edge_index)
    assert {tuple(e) for e in kept.edge_index.t().tolist()} <= {
        tuple(e) for e in both.edge_index.t().tolist()}


def test_gcde_encoder_and_decoder_flags():
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--encoder", "linear",
                          "--epochs", "3"])
    data, _ = nc.load(args)
    result = nc.run(args, data, int(data.y.max()) + 1, seed=0)
    assert any(k.startswith("encoder.weight") for k in result["parameters"])
    assert result["parameters"]["encoder.weight"].shape == (64, data.num_features)
    assert nc.parse_args(["--model", "gcde"]).encoder == "gcn"


@pytest.mark.parametrize("encoder", ["gcn", "linear"])
def test_gcde_encoder_init_draws_uniform_in_one_over_sqrt_hidden(encoder):
    solver = dict(t_span=(0.0, 1.0), method="rk4", step_size=1.0)

    def encoder_params(init):
        torch.manual_seed(0)
        model = GCDE(1433, 64, 7, dropout=0.5, field_dropout=0.9, solver=solver,
                        encoder=encoder, decoder="gcn", encoder_init=init)
        weight = model.encoder.lin.weight if encoder == "gcn" else model.encoder.weight
        return weight.detach(), model.encoder.bias.detach(), model

    weight, bias, uniform = encoder_params("uniform")
    bound = 64 ** -0.5
    for p in (weight, bias):  # U(-b, b): inside the bound, with the variance b^2 / 3
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound
    assert weight.var().item() == pytest.approx(bound ** 2 / 3, rel=0.02)
    glorot_weight, _, glorot = encoder_params("glorot")
    assert glorot_weight.abs().max() < 0.6 * bound  # PyG's Glorot (or Linear's) init is smaller
    # Only the encoder changes: the field and decoder draw the same weights either way.
    rest = [k for k in uniform.state_dict() if not k.startswith("encoder.")]
    assert all(torch.equal(uniform.state_dict()[k], glorot.state_dict()[k]) for k in rest)
    assert nc.parse_args(["--model", "gcde"]).encoder_init == "uniform"
    assert nc.parse_args(["--model", "gcde", "--encoder-init", "glorot"]).encoder_init == "glorot"


def test_gcde_input_dropout_acts_on_the_features_and_dropout_after_the_block():
    solver = dict(t_span=(0.0, 1.0), method="rk4", step_size=1.0)
    torch.manual_seed(0)
    model = GCDE(500, 16, 3, dropout=0.5, field_dropout=0.0, solver=solver, encoder="linear",
                    decoder="linear", input_dropout=0.8).train()
    seen = {}
    model.encoder.register_forward_hook(lambda m, inp, out: seen.update(encoder=inp[0]))
    model.decoder.register_forward_hook(lambda m, inp, out: seen.update(decoder=inp[0]))
    x = torch.ones(400, 500)
    model(x, torch.empty(2, 0, dtype=torch.long))
    kept = seen["encoder"] != 0
    assert kept.float().mean().item() == pytest.approx(0.2, abs=0.01)  # 200,000 draws
    assert torch.allclose(seen["encoder"][kept], torch.full_like(seen["encoder"][kept], 5.0))
    assert (seen["decoder"] == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    # Without input_dropout, one rate acts in both places, as before the flag existed.
    assert GCDE(500, 16, 3, dropout=0.3, field_dropout=0.0, solver=solver, encoder="linear",
                   decoder="linear").input_dropout == 0.3
    assert nc.parse_args(["--model", "gcde"]).input_dropout == 0.8
    assert nc.parse_args(["--model", "gcde", "--input-dropout", "0.4"]).input_dropout == 0.4
    assert nc.parse_args(["--model", "gcn"]).input_dropout is None


def test_method_flag_makes_the_solve_adaptive():
    args = nc.parse_args(["--model", "gcde", "--method", "dopri5"])
    assert args.step_size is None and args.method == "dopri5"
    assert nc.parse_args(["--model", "gcde"]).step_size == 1.0


def test_minibatches_of_sampled_neighbourhoods():
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--epochs", "4",
                          "--batch-size", "16", "--num-neighbors", "5,5"])
    data, _ = nc.load(args)
    result = nc.run(args, data, int(data.y.max()) + 1, seed=0)
    assert result["curves"]["loss"][-1] < result["curves"]["loss"][0]
    assert result["test"] > 0.5  # four classes: well above chance


def test_gde_cr_draws_passes_in_one_solve_and_regularises_them():
    """Training gives ``samples`` passes with different DropNode masks from one solve over
    their stacked channels; evaluation is one deterministic pass. The consistency loss is zero
    exactly when every pass predicts the same sharp distribution."""
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gde-cr"])
    data, _ = nc.load(args)
    solver = dict(t_span=(0.0, 2.0), method="rk4", step_size=1.0, gradient="autograd")
    model = GDECR(data.num_features, 8, 4, dropout=0.0, hidden_dropout=0.0, dropnode=0.5,
                     samples=3, consistency=1.0, temperature=0.5, solver=solver, alpha=0.1)
    out = model(data.x, data.edge_index)
    assert out.shape == (3, data.num_nodes, 4) and model.gde.stats.nfe == 8
    assert not torch.allclose(out[0], out[1])  # each pass drops other nodes
    model.eval()
    first, again = model(data.x, data.edge_index), model(data.x, data.edge_index)
    assert first.shape == (data.num_nodes, 4) and torch.equal(first, again)
    model.train()
    same = torch.zeros(3, 5, 4).index_fill_(-1, torch.tensor([1]), 50.0)  # one-hot, sharp
    assert model.consistency_loss(same) < 1e-12
    spread = torch.randn(3, 5, 4)
    assert model.consistency_loss(spread) > 0
    # Without DropNode or dropout the passes agree with the evaluation pass.
    model.dropnode = 0.0
    out = model(data.x, data.edge_index)
    model.eval()
    assert torch.allclose(out[2], model(data.x, data.edge_index), atol=1e-6)


def test_gde_cr_defaults_follow_the_dataset():
    cora = nc.parse_args(["--model", "gde-cr"])
    citeseer = nc.parse_args(["--model", "gde-cr", "--dataset", "CiteSeer"])
    assert (cora.samples, cora.dropout, cora.weight_decay) == (4, 0.5, 5e-4)
    assert (citeseer.samples, citeseer.dropout, citeseer.weight_decay) == (2, 0.0, 1e-3)
    assert nc.parse_args(["--model", "gde-cr", "--dataset", "CiteSeer",
                          "--samples", "3"]).samples == 3  # a flag wins
    with pytest.raises(SystemExit):
        nc.parse_args(["--model", "gde-cr", "--batch-size", "64"])


def test_gcde_trains_on_several_dropout_passes_with_the_consistency_loss():
    """With ``samples`` > 1 the GCDE returns one pass per dropout draw in training (one solve
    each, counted in the NFE) and one deterministic pass in evaluation; the training step adds
    the consistency loss, and the run learns."""
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--samples", "3",
                          "--consistency", "1.0", "--epochs", "5"])
    data, _ = nc.load(args)
    solver = dict(t_span=(0.0, 1.0), method="rk4", step_size=1.0, gradient="autograd")
    model = GCDE(data.num_features, 8, 4, dropout=0.5, field_dropout=0.5, solver=solver,
                    encoder="gcn", decoder="gcn", samples=3, consistency=1.0)
    with SolverStatsRecorder(model) as recorded:
        out = model(data.x, data.edge_index)
    assert out.shape == (3, data.num_nodes, 4)
    assert (recorded.calls, recorded.stats.nfe, recorded.stats.nfe_backward) == (3, 12, 0)
    assert not torch.allclose(out[0], out[1])  # each pass has its own dropout masks
    assert model.consistency_loss(out) > 0
    model.eval()
    first = model(data.x, data.edge_index)
    with SolverStatsRecorder(model) as recorded:
        again = model(data.x, data.edge_index)
    assert first.shape == (data.num_nodes, 4) and torch.equal(first, again)
    assert (recorded.calls, recorded.stats.nfe) == (1, 4)
    result = nc.run(args, data, 4, seed=0)
    assert result["nfe_forward"] == 12  # three rk4 steps of four evaluations per training step
    assert result["curves"]["loss"][-1] < result["curves"]["loss"][0]
    # One pass is the plain GCDE: the same run as without the flags.
    plain = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--epochs", "3"])
    one = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--epochs", "3",
                         "--samples", "1", "--consistency", "1.0"])
    assert nc.run(plain, data, 4, seed=1)["curves"] == nc.run(one, data, 4, seed=1)["curves"]


def test_gcde_defaults_follow_the_dataset():
    cora = nc.parse_args(["--model", "gcde"])
    citeseer = nc.parse_args(["--model", "gcde", "--dataset", "CiteSeer"])
    assert cora.samples == 1 and (cora.t_end, cora.label_smoothing) == (1.0, 0.0)
    assert (citeseer.samples, citeseer.consistency, citeseer.temperature) == (2, 0.7, 0.3)
    assert (citeseer.t_end, citeseer.label_smoothing) == (0.5, 0.3)
    with pytest.raises(SystemExit):  # the consistency loss spans every node
        nc.parse_args(["--model", "gcde", "--dataset", "CiteSeer", "--batch-size", "64"])
    assert nc.parse_args(["--model", "gcde", "--dataset", "CiteSeer", "--batch-size", "64",
                          "--samples", "1"]).batch_size == 64
    with pytest.raises(SystemExit):
        nc.parse_args(["--model", "gcde", "--samples", "0"])


def test_label_smoothing_spreads_that_share_of_the_target_over_all_classes():
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcn", "--dropout", "0"])
    data, _ = nc.load(args)
    classes = int(data.y.max()) + 1
    torch.manual_seed(0)
    model = GCN(data.num_features, 8, classes, dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ctx = nc.distributed.Context(device=torch.device("cpu"))
    index = data.train_mask.nonzero().view(-1)
    with torch.no_grad():
        logp = torch.log_softmax(model(data.x, data.edge_index)[index], -1)
    nll = -logp.gather(1, data.y[index, None]).mean()
    uniform = -logp.mean()  # cross-entropy against the uniform target
    for eps in (0.0, 0.3):
        loss = nc.train(model, model, data, opt, ctx, index, label_smoothing=eps)[0]
        assert loss == pytest.approx(float((1 - eps) * nll + eps * uniform), rel=1e-5)
    assert nc.parse_args(["--model", "gcde"]).label_smoothing == 0.0
    assert nc.parse_args(["--model", "gcde", "--dataset", "CiteSeer"]).label_smoothing == 0.3
    assert nc.parse_args(["--model", "gcn", "--dataset", "CiteSeer"]).label_smoothing == 0.0
    with pytest.raises(SystemExit):
        nc.parse_args(["--label-smoothing", "1.5"])


def test_bad_flags_name_the_fix():
    with pytest.raises(SystemExit):
        nc.parse_args(["--num-neighbors", "ten"])
    with pytest.raises(SystemExit, match="torchrun"):
        nc.main(["--distributed", "--dataset", "synthetic"])


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(ROOT / "examples" / "node_classification.py"),
                           "--distributed", "--dataset", "synthetic", "--model", "gcde",
                           "--epochs", "3", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 3
    assert proc.stdout.count("synthetic gcde: test accuracy") == 1  # rank 0 alone reports


def test_the_same_seed_gives_the_same_run():
    args = nc.parse_args(["--dataset", "synthetic", "--model", "gcde", "--epochs", "4",
                          "--batch-size", "64"])
    data, _ = nc.load(args)
    first, second = (nc.run(args, data, int(data.y.max()) + 1, seed=3) for _ in range(2))
    assert first["curves"] == second["curves"]
    for name, value in first["parameters"].items():
        assert torch.equal(value, second["parameters"][name]), name
    other = nc.run(args, data, int(data.y.max()) + 1, seed=4)
    assert other["curves"]["loss"] != first["curves"]["loss"]


def test_search_mode_never_evaluates_the_test_nodes(monkeypatch):
    seen = []
    real = nc.test

    def spy(model, data, loaders=None, search=False):
        seen.append(search)
        return real(model, data, loaders, search)
    monkeypatch.setattr(nc, "test", spy)
    summary = nc.main(["--dataset", "synthetic", "--model", "mlp", "--epochs", "3", "--seeds",
                       "2", "--search"])
    assert seen and all(seen)
    assert summary["search"] and summary["first_seed"] == nc.SEARCH_SEEDS
    assert summary["test_acc_mean"] is None and summary["test_acc_max_mean"] is None
    assert 0.0 < summary["val_acc_mean"] <= 1.0
    # the test accuracy slot stays empty: the masks are not compared at all
    data, _ = nc.load(nc.parse_args(["--dataset", "synthetic"]))
    data.test_mask = None  # an evaluation that looked at it would fail
    model = nc.build_model(nc.parse_args(["--dataset", "synthetic", "--model", "mlp"]),
                           data.num_features, int(data.y.max()) + 1, {})
    train, val, test = nc.test(model, data, search=True)
    assert test != test  # nan


def test_search_driver_records_every_configuration(tmp_path):
    import search_node_classification as search
    out = tmp_path / "search.json"
    record = search.main(["--dataset", "synthetic", "--model", "mlp", "--grid", "lr=0.01,0.02",
                          "dropout=0.1,0.5", "--json", str(out), "--", "--epochs", "2"])
    assert record["configurations"] == 4 and json.loads(out.read_text()) == record
    assert record["best"]["val_acc_mean"] == max(r["val_acc_mean"] for r in record["rows"])
    assert {tuple(sorted(r["config"].items())) for r in record["rows"]} == {
        (("dropout", d), ("lr", lr)) for lr in ("0.01", "0.02") for d in ("0.1", "0.5")}


def test_search_driver_records_a_diverged_configuration_and_goes_on(tmp_path):
    import search_node_classification as search
    record = search.main(["--dataset", "synthetic", "--model", "mlp", "--grid", "lr=1e12,0.01",
                          "--json", str(tmp_path / "s.json"), "--", "--epochs", "2",
                          "--num-nodes", "200"])
    failed, done = record["rows"]
    assert failed["val_acc_mean"] is None and failed["failed"].startswith("stopped:")
    assert record["best"] == done and record["first_seed"] == nc.SEARCH_SEEDS


def test_a_solve_that_fails_in_training_stops_with_its_message(monkeypatch):
    from graphode import SolveError

    def fail(*args, **kwargs):
        raise SolveError("the state became non-finite in the step from t=0.5", 0.5, 0.1, [])
    monkeypatch.setattr(nc, "run", fail)
    with pytest.raises(SystemExit, match="stopped: a solve failed during training: the state"):
        nc.main(["--dataset", "synthetic", "--model", "gcde", "--epochs", "1"])

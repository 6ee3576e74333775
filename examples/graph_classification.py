"""Graph classification with graph neural ODEs on TU datasets (many small graphs per batch).

Compares GIN (Xu et al., "How Powerful are Graph Neural Networks?", 2019) with two GDE models:
``gde`` (a linear encoder and a GDE block with a GCN field) and ``gde-gin`` (a GIN encoder
and a GDE block with a GIN field, read out at four times), both with the GIN paper's
readout. ``--per-graph-steps`` gives every graph of a batch its own adaptive step size:

    python examples/graph_classification.py --dataset MUTAG --model gde
    python examples/graph_classification.py --dataset PROTEINS --model gin --json out.json

Protocol of the GIN paper: 10-fold stratified cross-validation; the test accuracy of each fold
is recorded every epoch and the reported accuracy is the best epoch of the fold average (mean
± std over folds at that epoch); the last epoch's average is printed too.
"""
import argparse
import json
import statistics as st
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GCNConv, GINConv, global_add_pool

from graphode.data import load_tu, stratified_folds
from graphode.nn import GDEConv, SolverStatsRecorder
from graphode.training import check_args, exit_on_user_error

try:
    from tqdm import tqdm
except ImportError:  # the progress bar is a nicety
    def tqdm(iterable, **_):
        return iterable


def mlp(cin, hidden):
    """A GIN layer's MLP, followed by batch norm and ReLU as in the GIN paper's code (without
    the last normalisation, sum readouts of large graphs grow until training collapses)."""
    return nn.Sequential(nn.Linear(cin, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())


class Readout(nn.Module):
    """The GIN paper's readout: the sum-pooled node states of every layer (or time), each
    scored by its own linear layer after dropout, and the scores added. Linear on purpose: a
    ReLU hidden layer on sums over graphs of hundreds of nodes died on PROTEINS, and training
    fell back to the majority class."""

    def __init__(self, channels, classes, dropout):
        super().__init__()
        self.scores = nn.ModuleList(nn.Linear(c, classes) for c in channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, states, batch):
        return sum(score(self.dropout(global_add_pool(h, batch)))
                   for score, h in zip(self.scores, states))


class GIN(nn.Module):
    """GIN-0 with the readout of every layer (the GIN paper's architecture)."""

    def __init__(self, cin, hidden, classes, layers=5, dropout=0.5, **_):
        super().__init__()
        self.convs = nn.ModuleList(GINConv(mlp(cin if i == 0 else hidden, hidden))
                                   for i in range(layers))
        self.readout = Readout([cin] + [hidden] * layers, classes, dropout)

    def forward(self, x, edge_index, batch):
        states = [x]
        for conv in self.convs:
            states.append(conv(states[-1], edge_index))
        return self.readout(states, batch)


class GDEClassifier(nn.Module):
    """Linear encoder, a GDE block with a GCN + tanh field over t in [0, T], the GIN readout
    of the input, the encoding and the GDE's end state."""

    def __init__(self, cin, hidden, classes, dropout=0.5, solver=None, **_):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(cin, hidden), nn.ReLU())
        self.gde = GDEConv([GCNConv(hidden, hidden), nn.Tanh()], **solver)
        self.readout = Readout([cin, hidden, hidden], classes, dropout)

    def forward(self, x, edge_index, batch):
        h0 = self.encoder(x)
        return self.readout([x, h0, self.gde(h0, edge_index, batch=batch)], batch)


class GINGDEClassifier(nn.Module):
    """The continuous analogue of GIN: a GIN encoder layer, then a GDE block whose field is a
    GIN layer (sum aggregation, an MLP without batch norm, tanh), with the readout of the
    state at several times (as GIN reads out every layer)."""

    def __init__(self, cin, hidden, classes, dropout=0.5, solver=None, readouts=4, **_):
        super().__init__()
        self.encoder = GINConv(mlp(cin, hidden))
        t0, t1 = solver["t_span"]
        times = [t0 + (t1 - t0) * (k + 1) / readouts for k in range(readouts)]
        field = GINConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden)))
        self.gde = GDEConv([field, nn.Tanh()], t_eval=times, **solver)
        self.readout = Readout([cin] + [hidden] * (1 + readouts), classes, dropout)

    def forward(self, x, edge_index, batch):
        h0 = self.encoder(x, edge_index)
        return self.readout([x, h0, *self.gde(h0, edge_index, batch=batch)], batch)


MODELS = {"gin": GIN, "gde": GDEClassifier, "gde-gin": GINGDEClassifier}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="MUTAG")
    p.add_argument("--root", help="data root (else $GRAPHODE_DATA, else datasets/)")
    p.add_argument("--model", default="gde-gin", choices=sorted(MODELS))
    p.add_argument("--method", default="dopri5")
    p.add_argument("--gradient", default="autograd", choices=["autograd", "adjoint", "checkpoint"])
    p.add_argument("--per-graph-steps", action="store_true",
                   help="one adaptive step size per graph of a batch")
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--t-end", type=float, default=1.0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, default=1, help="repeat the cross-validation")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write a summary JSON here")
    p.add_argument("--plot", help="write fold-average test accuracy per epoch (PNG) here")
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def epoch_pass(model, loader, opt, device):
    model.train()
    nfe_f = nfe_b = 0
    for data in loader:
        data = data.to(device)
        opt.zero_grad()
        with SolverStatsRecorder(model) as recorded:
            loss = F.cross_entropy(model(data.x, data.edge_index, data.batch), data.y)
            loss.backward()
        opt.step()
        nfe_f += recorded.stats.nfe
        nfe_b += recorded.stats.nfe_backward
    return nfe_f, nfe_b


@torch.no_grad()
def accuracy(model, loader, device):
    model.eval()
    correct = 0
    for data in loader:
        data = data.to(device)
        correct += int((model(data.x, data.edge_index, data.batch).argmax(-1) == data.y).sum())
    return correct / len(loader.dataset)


def run_fold(args, dataset, train_idx, test_idx, seed):
    torch.manual_seed(seed)
    solver = dict(t_span=(0.0, args.t_end), method=args.method, rtol=args.rtol, atol=args.atol,
                  gradient=args.gradient, per_graph_steps=args.per_graph_steps)
    model = MODELS[args.model](dataset.num_features, args.hidden, dataset.num_classes,
                               dropout=args.dropout, solver=solver).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)
    train = DataLoader(dataset[train_idx], batch_size=args.batch_size, shuffle=True)
    test = DataLoader(dataset[test_idx], batch_size=256)
    curve, nfe_f, nfe_b, batches = [], 0, 0, 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        f, b = epoch_pass(model, train, opt, args.device)
        nfe_f, nfe_b, batches = nfe_f + f, nfe_b + b, batches + len(train)
        sched.step()
        curve.append(accuracy(model, test, args.device))
    return dict(curve=curve, seconds_per_epoch=(time.perf_counter() - start) / args.epochs,
                nfe_forward=nfe_f / batches, nfe_backward=nfe_b / batches)


def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error("examples/graph_classification.py"):
        dataset = load_tu(args.dataset, args.root)
    runs = []
    for seed in range(args.seeds):
        folds = stratified_folds(dataset._data.y, args.folds, seed)
        for k, (tr, te) in enumerate(tqdm(folds, desc=f"{args.model} on {dataset.name}, seed {seed}")):
            runs.append(run_fold(args, dataset, tr, te, seed * 1000 + k))
    curves = torch.tensor([r["curve"] for r in runs])  # (runs, epochs)
    mean = curves.mean(0)
    best = int(mean.argmax())
    summary = {
        "dataset": dataset.name, "model": args.model, "folds": args.folds,
        "acc_mean": float(mean[best]), "acc_std": float(curves[:, best].std(unbiased=False)),
        "best_epoch": best + 1, "last_epoch_acc_mean": float(mean[-1]),
        "per_graph_steps": args.per_graph_steps,
        "nfe_forward": st.mean(r["nfe_forward"] for r in runs),
        "nfe_backward": st.mean(r["nfe_backward"] for r in runs),
        "seconds_per_epoch": st.mean(r["seconds_per_epoch"] for r in runs),
    }
    print(f"{dataset.name} {args.model}{' per-graph steps' if args.per_graph_steps else ''}: "
          f"accuracy {100 * summary['acc_mean']:.1f} ± {100 * summary['acc_std']:.1f} "
          f"(best epoch {best + 1}; last epoch {100 * summary['last_epoch_acc_mean']:.1f}; "
          f"{args.folds} folds x {args.seeds} seed(s); NFE {summary['nfe_forward']:.1f} per batch; "
          f"{summary['seconds_per_epoch']:.2f} s/epoch)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            plt.figure(figsize=(6, 4))
            plt.plot(range(1, len(mean) + 1), mean.numpy())
            plt.xlabel("epoch")
            plt.ylabel("fold-average test accuracy")
            plt.title(f"{args.model} on {dataset.name}")
            plt.tight_layout()
            plt.savefig(args.plot, dpi=120)
        except ImportError:
            print("--plot needs matplotlib: pip install -e '.[plot]'")
    return summary


if __name__ == "__main__":
    main()

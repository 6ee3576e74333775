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
from torch_geometric.loader import DataLoader

from graphode.data import load_tu, stratified_folds
from graphode.models import GIN, GDEClassifier, GINGDEClassifier
from graphode.nn import SolverStatsRecorder

from _common import add_flags, check_args, exit_on_user_error, figure, tqdm

MODELS = {"gin": GIN, "gde": GDEClassifier, "gde-gin": GINGDEClassifier}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="MUTAG")
    add_flags(p, "root")
    p.add_argument("--model", default="gde-gin", choices=sorted(MODELS))
    add_flags(p, "method", "gradient", method="dopri5", gradient="autograd")
    p.add_argument("--per-graph-steps", action="store_true",
                   help="one adaptive step size per graph of a batch")
    add_flags(p, "rtol", "atol", "t_end", "hidden", "dropout", "lr", t_end=1.0, hidden=64,
              dropout=0.5, lr=0.01)
    p.add_argument("--folds", type=int, default=10)
    add_flags(p, "epochs", "batch_size", epochs=100, batch_size=32)
    add_flags(p, "seeds", seeds=dict(help="repeat the cross-validation"))
    add_flags(p, "device", "json")
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
    sizes = (dataset.num_features, args.hidden, dataset.num_classes)
    model = GIN(*sizes, dropout=args.dropout) if args.model == "gin" else \
        MODELS[args.model](*sizes, dropout=args.dropout, solver=solver)
    model = model.to(args.device)
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
        with figure(args.plot, figsize=(6, 4)) as ax:
            ax.plot(range(1, len(mean) + 1), mean.numpy())
            ax.set(xlabel="epoch", ylabel="fold-average test accuracy",
                   title=f"{args.model} on {dataset.name}")
    return summary


if __name__ == "__main__":
    main()

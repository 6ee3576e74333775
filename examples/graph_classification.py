"""Graph classification with graph neural ODEs on TU datasets (many small graphs per batch).

Compares GIN (Xu et al., "How Powerful are Graph Neural Networks?", 2019) with two GDE models:
``gde`` (a linear encoder and a GDE block with a GCN field) and ``gde-gin`` (a GIN encoder
and a GDE block with a GIN field, read out at four times), both with the GIN paper's
readout. ``--per-graph-steps`` gives every graph of a batch its own adaptive step size:

    python examples/graph_classification.py --dataset MUTAG --model gde
    python examples/graph_classification.py --dataset PROTEINS --model gin --json out.json

Two protocols. ``--protocol errica`` (the default) is the strict one of Errica et al., "A
Fair Comparison of Graph Neural Networks for Graph Classification" (ICLR 2020): 10-fold
stratified cross-validation in which each outer training fold holds out 10% (stratified) for
validation; every configuration of ``--grid`` trains on the rest and the one with the best
validation accuracy is chosen, then trained ``--final-runs`` times (each with its own
held-out 10%) and each run's state at its best validation epoch is tested once; the fold's
accuracy is their mean, and the result is the mean ± std over the outer folds. The test
folds play no part in choosing a configuration or an epoch.

``--protocol gin`` is the GIN paper's: 10-fold stratified cross-validation with one
configuration (the flags); the test accuracy of each fold is recorded every epoch and the
reported accuracy is the best epoch of the fold average (mean ± std over folds at that
epoch); the last epoch's average is printed too. It selects the epoch on the test folds.
"""
import argparse
import copy
import itertools
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
    p.add_argument("--protocol", choices=("errica", "gin"), default="errica",
                   help="errica: configuration and epoch chosen on a validation part held out "
                        "of each training fold (the default); gin: the flags' configuration, "
                        "the epoch of best fold-average test accuracy")
    p.add_argument("--grid", default="lr=0.01,0.001;hidden=32,64",
                   help="errica: the configurations to choose from, 'name=v1,v2;name=...' over "
                        f"{', '.join(GRID_FLAGS)} (every combination is tried)")
    p.add_argument("--final-runs", type=int, default=3,
                   help="errica: trainings of the chosen configuration per fold")
    p.add_argument("--plot", help="gin protocol: write fold-average test accuracy per epoch "
                                  "(PNG) here")
    args = p.parse_args(argv)
    check_args(p, args)
    if args.protocol == "errica":
        try:
            args.grid = parse_grid(args.grid)
        except ValueError as err:
            p.error(f"--grid: {err}")
        if args.final_runs < 1:
            p.error(f"--final-runs must be at least 1, got {args.final_runs}")
        if args.plot:
            p.error("--plot draws the fold-average test accuracy per epoch, which the errica "
                    "protocol never computes: use it with --protocol gin")
    return args


#: the flags a --grid may vary, and their types
GRID_FLAGS = {"lr": float, "hidden": int, "dropout": float, "batch_size": int, "t_end": float}


def parse_grid(text):
    """``'lr=0.01,0.001;hidden=32,64'`` -> every combination, as a list of dicts."""
    axes = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, values = part.partition("=")
        name = name.strip().replace("-", "_")
        if name not in GRID_FLAGS or not values.strip():
            raise ValueError(f"{part!r} is not name=v1,v2 with a name among "
                             f"{', '.join(GRID_FLAGS)}")
        try:
            axes[name] = [GRID_FLAGS[name](v) for v in values.split(",")]
        except ValueError:
            kind = "an integer" if GRID_FLAGS[name] is int else "a number"
            raise ValueError(f"{part!r} holds a value that is not {kind}") from None
    if not axes:
        raise ValueError("no configuration: give at least one name=v1,v2")
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


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


def train(args, dataset, train_idx, watch_idx, seed):
    """Train one model with ``args``' configuration for ``args.epochs`` epochs. Returns the
    accuracy on ``watch_idx`` after every epoch, the model at its first best epoch, and the
    cost."""
    torch.manual_seed(seed)
    solver = dict(t_span=(0.0, args.t_end), method=args.method, rtol=args.rtol, atol=args.atol,
                  gradient=args.gradient, per_graph_steps=args.per_graph_steps)
    sizes = (dataset.num_features, args.hidden, dataset.num_classes)
    model = GIN(*sizes, dropout=args.dropout) if args.model == "gin" else \
        MODELS[args.model](*sizes, dropout=args.dropout, solver=solver)
    model = model.to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=50, gamma=0.5)
    loader = DataLoader(dataset[train_idx], batch_size=args.batch_size, shuffle=True)
    watch = DataLoader(dataset[watch_idx], batch_size=256)
    curve, nfe_f, nfe_b, batches, best = [], 0, 0, 0, None
    start = time.perf_counter()
    for _ in range(args.epochs):
        f, b = epoch_pass(model, loader, opt, args.device)
        nfe_f, nfe_b, batches = nfe_f + f, nfe_b + b, batches + len(loader)
        sched.step()
        curve.append(accuracy(model, watch, args.device))
        if best is None or curve[-1] > max(curve[:-1]):
            best = copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    return dict(curve=curve, model=model,
                seconds_per_epoch=(time.perf_counter() - start) / args.epochs,
                nfe_forward=nfe_f / batches, nfe_backward=nfe_b / batches)


def holdout(labels, train_idx, seed):
    """A stratified tenth of ``train_idx`` for validation: ``(rest, validation)``."""
    rest, val = stratified_folds(labels[train_idx], 10, seed)[0]
    return train_idx[rest], train_idx[val]


def gin_protocol(args, dataset):
    runs = []
    for seed in range(args.seeds):
        folds = stratified_folds(dataset._data.y, args.folds, seed)
        for k, (tr, te) in enumerate(tqdm(folds, desc=f"{args.model} on {dataset.name}, "
                                                      f"seed {seed}")):
            runs.append(train(args, dataset, tr, te, seed * 1000 + k))
    curves = torch.tensor([r["curve"] for r in runs])  # (runs, epochs)
    mean = curves.mean(0)
    best = int(mean.argmax())
    return runs, {"acc_mean": float(mean[best]),
                  "acc_std": float(curves[:, best].std(unbiased=False)),
                  "best_epoch": best + 1, "last_epoch_acc_mean": float(mean[-1]),
                  "curve": mean.tolist()}


def errica_protocol(args, dataset):
    """Errica et al.'s protocol: an inner validation part chooses the configuration and the
    epoch; each test fold is scored once per final run."""
    labels = dataset._data.y.view(-1)
    runs, fold_acc, chosen = [], [], []
    for seed in range(args.seeds):
        folds = stratified_folds(labels, args.folds, seed)
        for k, (tr, te) in enumerate(tqdm(folds, desc=f"{args.model} on {dataset.name}, "
                                                      f"seed {seed}")):
            fold_seed = seed * 1000 + k
            inner, val = holdout(labels, tr, fold_seed)
            scores = []
            for c, config in enumerate(args.grid):
                run = train(argparse.Namespace(**{**vars(args), **config}), dataset, inner,
                            val, fold_seed * 100 + c)
                scores.append(max(run["curve"]))
                runs.append(run)
            config = args.grid[max(range(len(scores)), key=scores.__getitem__)]
            chosen.append(config)
            tests = []
            for r in range(args.final_runs):
                rest, val_r = holdout(labels, tr, fold_seed * 100 + 50 + r)
                run = train(argparse.Namespace(**{**vars(args), **config}), dataset, rest,
                            val_r, fold_seed * 100 + 50 + r)
                tests.append(accuracy(run["model"], DataLoader(dataset[te], batch_size=256),
                                      args.device))
                runs.append(run)
            fold_acc.append(st.mean(tests))
    acc = torch.tensor(fold_acc)
    return runs, {"acc_mean": float(acc.mean()), "acc_std": float(acc.std(unbiased=False)),
                  "fold_acc": fold_acc, "grid": args.grid, "configurations": len(args.grid),
                  "chosen": chosen, "final_runs": args.final_runs}


def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error("examples/graph_classification.py"):
        dataset = load_tu(args.dataset, args.root)
    runs, result = (gin_protocol if args.protocol == "gin" else errica_protocol)(args, dataset)
    summary = {
        "dataset": dataset.name, "model": args.model, "folds": args.folds,
        "protocol": args.protocol, "seeds": args.seeds, "per_graph_steps": args.per_graph_steps,
        **{k: v for k, v in result.items() if k != "curve"},
        "nfe_forward": st.mean(r["nfe_forward"] for r in runs),
        "nfe_backward": st.mean(r["nfe_backward"] for r in runs),
        "seconds_per_epoch": st.mean(r["seconds_per_epoch"] for r in runs),
    }
    how = (f"best epoch {summary['best_epoch']} of the fold-average test accuracy; last epoch "
           f"{100 * summary['last_epoch_acc_mean']:.1f}" if args.protocol == "gin" else
           f"configuration and epoch chosen on validation, {len(args.grid)} configuration(s), "
           f"{args.final_runs} final run(s) per fold")
    print(f"{dataset.name} {args.model}{' per-graph steps' if args.per_graph_steps else ''}, "
          f"{args.protocol} protocol: accuracy {100 * summary['acc_mean']:.1f} ± "
          f"{100 * summary['acc_std']:.1f} ({how}; {args.folds} folds x {args.seeds} seed(s); "
          f"NFE {summary['nfe_forward']:.1f} per batch; "
          f"{summary['seconds_per_epoch']:.2f} s/epoch)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if args.plot:
        mean = result["curve"]
        with figure(args.plot, figsize=(6, 4)) as ax:
            ax.plot(range(1, len(mean) + 1), mean)
            ax.set(xlabel="epoch", ylabel="fold-average test accuracy",
                   title=f"{args.model} on {dataset.name}")
    return summary


if __name__ == "__main__":
    main()

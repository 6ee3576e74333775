"""How sure is the classifier? Accuracy, calibration and out-of-distribution detection of a
graph neural SDE next to the deterministic GCDE and GCN on Planetoid graphs.

For every model and seed it trains twice:

- on all classes: test accuracy and expected calibration error (ECE, 15 bins) of the
  predicted probabilities at the epoch of best validation accuracy;
- with one class held out (its nodes leave the training and validation sets; by default the
  last class): the AUROC of the predictive entropy for telling the held-out class's test
  nodes from the others, and the accuracy on the others.

The GNSDE averages the probabilities of ``--eval-samples`` Brownian paths; the GCN and GCDE
give one softmax. ``--search`` picks the GNSDE's initial noise scale and label smoothing (the
GCDE's or none) by validation negative log-likelihood, over seeds disjoint from the reported
ones, and prints what it tried:

    python examples/node_uncertainty.py --dataset Cora --seeds 10 --json cora.json
    python examples/node_uncertainty.py --dataset CiteSeer --search
"""
import argparse
import copy
import json
import statistics as st

import torch
import torch.nn.functional as F
from node_classification import load, train

from graphode import distributed
from graphode.metrics import auroc, expected_calibration_error

from _common import add_flags, check_args, run_example
from _node_models import SETTINGS, SETTINGS_ON, build_model

MODELS = ("gcn", "gcde", "gnsde")
SEARCH_SEEDS = range(100, 103)  # the search never sees the reported seeds 0, 1, ...
NOISE_SCALES = (0.1, 0.5, 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="Cora", help="Cora (default), CiteSeer or synthetic")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--holdout", type=int, default=-1,
                   help="class held out of training for out-of-distribution detection "
                        "(default: the last)")
    p.add_argument("--noise-scale", type=float, help="GNSDE initial noise scale (default: the "
                                                      "dataset's searched value)")
    p.add_argument("--label-smoothing", type=float,
                   help="GNSDE label smoothing (default: the dataset's searched value, else "
                        "the GCDE's); with --search, the only value searched")
    p.add_argument("--eval-samples", type=int, default=32,
                   help="GNSDE paths averaged for the reported predictions")
    p.add_argument("--search", action="store_true",
                   help=f"choose the GNSDE noise scale from {NOISE_SCALES} and the label "
                        "smoothing (the GCDE's or none) by validation NLL on seeds "
                        f"{SEARCH_SEEDS.start}-{SEARCH_SEEDS.stop - 1}")
    add_flags(p, "seeds", "epochs", "root", "json", "device")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",")]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.label_smoothing is not None and not 0.0 <= args.label_smoothing < 1.0:
        p.error(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if args.eval_samples < 1:
        p.error(f"--eval-samples must be at least 1, got {args.eval_samples}")
    args.distributed, args.random_features = False, False
    check_args(p, args)
    return args


# The GNSDE's noise scale and label smoothing per dataset, chosen by --search
# (examples/README.md shows the runs; the records are examples/results/uncertainty_search_*).
CHOSEN = {"cora": dict(noise_scale=0.1),
          "citeseer": dict(noise_scale=0.1, label_smoothing=0.0)}


def model_args(args, name, noise_scale=None, label_smoothing=None):
    """The settings of model ``name`` on this dataset, as node_classification.py uses them;
    the GNSDE takes the GCDE's (its passes per training step and consistency loss too), its
    own noise scale and label smoothing, and five Euler-Maruyama steps."""
    base = "gcde" if name == "gnsde" else name
    merged = dict(SETTINGS[base], **SETTINGS_ON.get((base, args.dataset.lower()), {}))
    merged.setdefault("label_smoothing", 0.0)
    if args.epochs is not None:
        merged["epochs"] = args.epochs
    chosen = CHOSEN.get(args.dataset.lower(), {})
    if name == "gnsde":
        for value in (label_smoothing, args.label_smoothing, chosen.get("label_smoothing")):
            if value is not None:  # the first given: argument, flag, searched value
                merged["label_smoothing"] = value
                break
    return argparse.Namespace(**merged, model=base, gnsde=name == "gnsde",
                              noise_scale=noise_scale or args.noise_scale or
                              chosen.get("noise_scale", 0.5))


def build(margs, in_channels, classes, eval_samples):
    if not margs.gnsde:
        solver = None if margs.model == "gcn" else dict(
            t_span=(0.0, margs.t_end), method=margs.method, step_size=margs.step_size,
            gradient=margs.gradient)
        return build_model(margs, in_channels, classes, solver)
    from graphode.models import GNSDE
    return GNSDE(in_channels, margs.hidden, classes, dropout=margs.dropout,
                 field_dropout=margs.field_dropout, input_dropout=margs.input_dropout,
                 encoder_init=margs.encoder_init, noise_scale=margs.noise_scale,
                 t_end=margs.t_end, dt=margs.t_end / 5, eval_samples=eval_samples,
                 samples=margs.samples, consistency=margs.consistency,
                 temperature=margs.temperature)


@torch.no_grad()
def probabilities(model, data, samples=None):
    model.eval()
    if samples is not None and hasattr(model, "eval_samples"):
        model.eval_samples, before = samples, model.eval_samples
        out = model(data.x, data.edge_index).softmax(-1)
        model.eval_samples = before
        return out
    return model(data.x, data.edge_index).softmax(-1)


def fit(margs, data, classes, seed, eval_samples):
    """Train with early stopping on validation accuracy (the GNSDE selects on 4 paths);
    return the best epoch's predicted probabilities on every node."""
    torch.manual_seed(seed)
    model = build(margs, data.num_features, classes, eval_samples)
    opt = torch.optim.Adam(model.param_groups(margs.weight_decay)
                           if hasattr(model, "param_groups") else model.parameters(),
                           lr=margs.lr, weight_decay=0.0 if hasattr(model, "param_groups")
                           else margs.weight_decay)
    ctx = distributed.Context(device=data.x.device)
    train_index = data.train_mask.nonzero().view(-1)
    best, best_state, since = -1.0, None, 0
    for _ in range(margs.epochs):
        train(model, model, data, opt, ctx, train_index, margs.label_smoothing)
        pred = probabilities(model, data, 4).argmax(-1)
        val = float((pred[data.val_mask] == data.y[data.val_mask]).float().mean())
        if val > best:
            best, best_state, since = val, copy.deepcopy(model.state_dict()), 0
        since += 1
        if since > margs.patience:
            break
    model.load_state_dict(best_state)
    return probabilities(model, data)


def held_out(data, holdout):
    """The graph with class ``holdout`` out of the training and validation sets, its label
    moved to the end; returns the graph and the mask of its nodes."""
    classes = int(data.y.max()) + 1
    holdout %= classes
    ood = data.y == holdout
    out = copy.copy(data)
    order = [c for c in range(classes) if c != holdout] + [holdout]
    out.y = torch.argsort(torch.tensor(order))[data.y]
    out.train_mask, out.val_mask = data.train_mask & ~ood, data.val_mask & ~ood
    return out, ood


def evaluate(args, data, name, seed, noise_scale=None):
    margs = model_args(args, name, noise_scale)
    classes = int(data.y.max()) + 1
    probs = fit(margs, data, classes, seed, args.eval_samples)
    test, y = data.test_mask, data.y
    shifted, ood = held_out(data, args.holdout)
    p_ood = fit(margs, shifted, classes - 1, seed, args.eval_samples)
    entropy = -(p_ood * p_ood.clamp_min(1e-12).log()).sum(-1)
    inside = test & ~ood
    return dict(
        test_acc=float((probs[test].argmax(-1) == y[test]).float().mean()),
        ece=float(expected_calibration_error(probs[test], y[test])),
        # mean top probability: above the accuracy is overconfident, below it underconfident
        confidence=float(probs[test].max(-1).values.mean()),
        ood_auroc=float(auroc(entropy[test], ood[test])),
        id_acc=float((p_ood[inside].argmax(-1) == shifted.y[inside]).float().mean()),
        val_nll=float(F.nll_loss(probs[data.val_mask].clamp_min(1e-12).log(),
                                 y[data.val_mask])))


def search(args, data):
    """Validation NLL of each noise scale and label smoothing (the GCDE's and none, or
    ``--label-smoothing`` alone) over the search seeds; no test number is read."""
    gcde = model_args(args, "gcde").label_smoothing
    smoothings = [args.label_smoothing] if args.label_smoothing is not None else \
        sorted({gcde, 0.0})
    tried = []
    for smoothing in smoothings:
        for scale in NOISE_SCALES:
            margs = model_args(args, "gnsde", scale, smoothing)
            nll = []
            for seed in SEARCH_SEEDS:
                probs = fit(margs, data, int(data.y.max()) + 1, seed, args.eval_samples)
                nll.append(float(F.nll_loss(probs[data.val_mask].clamp_min(1e-12).log(),
                                            data.y[data.val_mask])))
            tried.append(dict(noise_scale=scale, label_smoothing=smoothing,
                              val_nll=st.mean(nll)))
            print(f"noise scale {scale}, label smoothing {smoothing}: validation NLL "
                  f"{tried[-1]['val_nll']:.4f}")
    best = min(tried, key=lambda row: row["val_nll"])
    choice = dict(noise_scale=best["noise_scale"], label_smoothing=best["label_smoothing"])
    print(f"{args.dataset}: chose {choice} of {len(tried)} configurations")
    return dict(dataset=args.dataset, tried=tried, chosen=choice)


def report(args, ctx):
    data, name = load(argparse.Namespace(dataset=args.dataset, root=args.root,
                                         random_features=False, num_nodes=1000))
    if name != "synthetic":  # row-normalised bag-of-words features, as node_classification.py
        data.x = data.x / data.x.sum(-1, keepdim=True).clamp(min=1e-12)
    if args.search:
        summary = search(args, data)
    else:
        summary = dict(dataset=name, seeds=args.seeds, holdout=args.holdout, models={})
        for model in args.models:
            runs = [evaluate(args, data, model, seed) for seed in range(args.seeds)]
            row = {k: (st.mean(r[k] for r in runs), st.pstdev(r[k] for r in runs))
                   for k in runs[0]}
            summary["models"][model] = row
            print(f"{name} {model}: accuracy {100 * row['test_acc'][0]:.1f} ± "
                  f"{100 * row['test_acc'][1]:.1f}, ECE {100 * row['ece'][0]:.1f} ± "
                  f"{100 * row['ece'][1]:.1f} (mean confidence "
                  f"{100 * row['confidence'][0]:.1f}), OOD AUROC {100 * row['ood_auroc'][0]:.1f} ± "
                  f"{100 * row['ood_auroc'][1]:.1f} (in-distribution accuracy "
                  f"{100 * row['id_acc'][0]:.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


def main(argv=None):
    return run_example(report, parse_args(argv), "examples/node_uncertainty.py")


if __name__ == "__main__":
    main()

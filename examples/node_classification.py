"""Node classification with graph neural ODEs on Planetoid citation graphs.

Reproduces the GCDE of Poli et al., "Graph Neural Ordinary Differential Equations" (2019),
next to the discrete GCN it is measured against, a diffusion GDE with a source term in the
spirit of CGNN (Xhonneux et al., 2020), and ``gde-cr``, the same diffusion as random
propagation trained with consistency regularisation (after GRAND, Feng et al., 2020). With no
arguments it trains the GCDE on Cora (or, when Cora can be neither found nor downloaded, on a
synthetic graph):

    python examples/node_classification.py
    python examples/node_classification.py --dataset CiteSeer --model gde-cr --seeds 10
    python examples/node_classification.py --model gcde --method dopri5 --json out.json

Reports test accuracy at the epoch of best validation accuracy, mean and std over seeds. On
the Geom-GCN heterophily graphs (``--dataset Texas``, Wisconsin, Cornell, chameleon, Actor) it
runs each of the 10 standard splits once, split k with seed k, and reports mean and std over
the splits:

    python examples/node_classification.py --dataset Texas --model gcn

Large graphs train in mini-batches of sampled neighbourhoods (PyG's NeighborLoader), and
``--distributed`` under torchrun trains with DistributedDataParallel, each process on its
share of the training nodes; only rank 0 prints and writes files:

    python examples/node_classification.py --dataset synthetic --num-nodes 1000000 --batch-size 1024
    torchrun --standalone --nproc_per_node 2 examples/node_classification.py --distributed
"""
import argparse
import copy
import json
import resource
import statistics as st
import time

import torch
import torch.nn.functional as F
from torch_geometric.utils import to_undirected

from graphode import distributed
from graphode.data import (
    HETEROPHILY,
    DataNotFoundError,
    contextual_sbm,
    large_contextual_sbm,
    load_heterophily,
    load_planetoid,
)
from graphode.loader import neighbor_loader, seed_accuracy
from graphode.nn import SolverStatsRecorder
from graphode.training import check_loss, restore_training_state, run_seeds, training_state

from _common import add_flags, check_args, epochs, figure, run_example, settings
from _node_models import MODELS, add_model_flags, apply_settings, build_model

# Settings are chosen on runs with these seeds and up (validation accuracy only); the
# reported runs use seeds 0, 1, ...
SEARCH_SEEDS = 100


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", help="Cora (default), CiteSeer, PubMed, a heterophily graph "
                   "(Texas, Wisconsin, Cornell, chameleon, Actor; their 10 splits) or synthetic")
    p.add_argument("--splits", type=int, help="heterophily graphs: run the first N of the 10 "
                   "standard splits, split k with seed k (default: all 10)")
    p.add_argument("--model", default="gcde", choices=sorted(MODELS))
    add_flags(p, "method", "gradient", "rtol", "atol", "step_size", "t_end", "hidden", "dropout",
              step_size=dict(help="fixed step (gcde default 1.0; none with dopri5)"),
              gradient=dict(help="autograd by default: the GCDE field has dropout, and cgnn's "
                                 "7-class state is small enough to store"))
    add_model_flags(p)
    add_flags(p, "lr", "weight_decay", "epochs", "patience", "seeds", "batch_size",
              batch_size=dict(help="train on mini-batches of this many seed nodes and their "
                                   "sampled neighbourhoods (PyG's NeighborLoader)"))
    p.add_argument("--num-neighbors", default="10,10",
                   help="neighbours sampled per node at each hop, with --batch-size (-1: all)")
    p.add_argument("--num-nodes", type=int, default=1000,
                   help="size of the synthetic graph (above 20000, a sampled SBM with 1%% of "
                        "the nodes for training)")
    p.add_argument("--random-features", action="store_true",
                   help="use random node features where the dataset's are missing (PubMed's "
                        "offline copy): for measuring scale, not accuracy")
    add_flags(p, "distributed", "device", "root", "json", "checkpoint", "resume")
    p.add_argument("--plot", help="write loss and accuracy curves (PNG) here")
    p.add_argument("--search", action="store_true",
                   help="for choosing settings: validation accuracy only (the test nodes are "
                        "never evaluated), on seeds from 100 on, apart from the reported 0, 1, "
                        "...; on the heterophily graphs split k runs with seed 100 + k")
    args = p.parse_args(argv)
    check_args(p, args)
    apply_settings(p, args)
    try:
        args.num_neighbors = [int(v) for v in args.num_neighbors.split(",")]
    except ValueError:
        p.error(f"--num-neighbors takes comma-separated integers such as 10,10, "
                f"not {args.num_neighbors!r}")
    return args


def load(args):
    """The dataset asked for; with none asked for, Cora or else a synthetic graph. Large
    synthetic graphs are sampled and keep 1% of the nodes for training."""
    if (args.dataset or "").lower() == "synthetic":
        n = args.num_nodes
        return (contextual_sbm(num_nodes=n) if n <= 20000 else large_contextual_sbm(
            n, train_per_class=n // 400, num_val=5000, num_test=10000)), "synthetic"
    if (args.dataset or "").lower() in HETEROPHILY:
        return load_heterophily(args.dataset, root=args.root), \
            HETEROPHILY[args.dataset.lower()][0]
    try:
        return load_planetoid(args.dataset or "Cora", root=args.root,
                              missing_features="random" if args.random_features else "error"), \
            args.dataset or "Cora"
    except DataNotFoundError as err:
        if args.dataset is not None:
            raise
        print(f"Cora unavailable, running on a synthetic contextual SBM graph instead. {err}")
        return contextual_sbm(), "synthetic"


def train(net, model, data, opt, ctx, train_index, label_smoothing=0.0):
    """One full-graph step; each process takes its share of the training nodes, and the loss
    is scaled so that the all-reduced gradient is that of the mean over all of them."""
    net.train()
    opt.zero_grad()
    mine = ctx.shard(train_index)
    with SolverStatsRecorder(model) as recorded:
        out = net(data.x, data.edge_index)
        several = out.dim() == 3  # several passes: their mean loss plus the consistency loss
        passes = out.size(0) if several else 1
        loss = F.cross_entropy(out[..., mine, :].flatten(0, -2), data.y[mine].repeat(passes),
                               reduction="sum", label_smoothing=label_smoothing) / passes
        extra = model.consistency_loss(out) if several else 0.0
        (ctx.loss_scale(train_index.numel()) * loss + extra).backward()
    opt.step()
    return ctx.all_mean(loss.item() / max(mine.numel(), 1)), recorded.stats.nfe, \
        recorded.stats.nfe_backward


def train_batches(net, model, loader, opt, ctx, label_smoothing=0.0):
    """One epoch of mini-batches: a sampled neighbourhood per batch, the loss on its seeds."""
    net.train()
    losses, nfe_f, nfe_b = [], 0, 0
    for batch in loader:
        batch = batch.to(ctx.device)
        opt.zero_grad()
        with SolverStatsRecorder(model) as recorded:
            loss = F.cross_entropy(net(batch.x, batch.edge_index)[:batch.batch_size],
                                   batch.y[:batch.batch_size], label_smoothing=label_smoothing)
            loss.backward()
        opt.step()
        losses.append(loss.item())
        nfe_f, nfe_b = nfe_f + recorded.stats.nfe, nfe_b + recorded.stats.nfe_backward
    return ctx.all_mean(st.mean(losses)), nfe_f / len(losses), nfe_b / len(losses)


@torch.no_grad()
def test(model, data, loaders=None, search=False):
    """Accuracy on the train, val and test nodes: over the whole graph, or with ``loaders``
    (one per mask) over sampled neighbourhoods. With ``search`` the test nodes are not
    looked at (``nan`` in their place)."""
    model.eval()
    if loaders is None:
        pred = model(data.x, data.edge_index).argmax(-1)
        masks = (data.train_mask, data.val_mask) + (() if search else (data.test_mask,))
        return [float((pred[m] == data.y[m]).float().mean()) for m in masks] + \
            ([float("nan")] if search else [])
    return [seed_accuracy(model, loader) for loader in loaders[:2 if search else 3]] + \
        ([float("nan")] if search else [])


def run(args, data, num_classes, seed, ctx=None, saved=None, save=None):
    """Train one seed. ``saved``: a checkpoint of this seed to continue from; ``save(state)``
    is called after every epoch with everything needed to continue exactly."""
    ctx = ctx or distributed.Context(device=torch.device(args.device))
    torch.manual_seed(seed)
    solver = dict(t_span=(0.0, args.t_end), method=args.method, rtol=args.rtol, atol=args.atol,
                  step_size=args.step_size, gradient=args.gradient)
    model = build_model(args, data.num_features, num_classes, solver).to(ctx.device)
    net = ctx.wrap(model)
    groups = model.param_groups(args.weight_decay) if hasattr(model, "param_groups") else \
        [dict(params=model.parameters(), weight_decay=args.weight_decay)]
    opt = torch.optim.Adam(groups, lr=args.lr)
    train_index = data.train_mask.nonzero().view(-1)
    if hasattr(model, "use_labelled"):  # GRAND++: its source sits on the labelled nodes
        model.use_labelled(train_index)
    loader = eval_loaders = None
    if args.batch_size:
        loader = neighbor_loader(data, args.num_neighbors, args.batch_size, shuffle=True,
                                 input_nodes=ctx.shard(train_index.cpu(), equal=True))
        eval_loaders = [neighbor_loader(data, args.num_neighbors, 4 * args.batch_size,
                                        input_nodes=mask.cpu())
                        for mask in (data.train_mask, data.val_mask, data.test_mask)]
    progress = dict(best=dict(val=-1.0, test=0.0, epoch=0), curves=dict(loss=[], train=[], val=[],
                    test=[]), epoch=0, nfe_forward=0, nfe_backward=0, elapsed=0.0)
    if saved is not None:
        progress = restore_training_state(saved, model, opt)
    best, curves = progress["best"], progress["curves"]
    for bar in epochs(progress, args.epochs, args.patience, f"{args.model} seed {seed}", ctx.main):
        start = time.perf_counter()
        loss, f, b = train(net, model, data, opt, ctx, train_index, args.label_smoothing) \
            if loader is None else train_batches(net, model, loader, opt, ctx, args.label_smoothing)
        check_loss(loss, progress["epoch"])
        progress["nfe_forward"] += f
        progress["nfe_backward"] += b
        # Every rank sees the same numbers, so every rank stops at the same epoch.
        tr, va, te = (ctx.all_mean(a) for a in test(model, data, eval_loaders, args.search))
        progress["elapsed"] += time.perf_counter() - start
        for key, v in zip(curves, (loss, tr, va, te)):
            curves[key].append(v)
        if va > best["val"]:
            progress["best"] = best = dict(val=va, test=te, epoch=progress["epoch"])
        bar.set_postfix(loss=f"{loss:.3f}", val=f"{va:.3f}", best=f"{best['val']:.3f}")
        if save is not None:
            save(training_state(model, opt, **progress))
    epoch = progress["epoch"]
    if ctx.main:
        shown = "" if args.search else f", test {100 * best['test']:.1f}"
        print(f"seed {seed}: val {100 * best['val']:.1f}{shown} at epoch "
              f"{best['epoch']} of {epoch}")
    per_epoch = {k: progress[k] / max(epoch, 1) for k in ("nfe_forward", "nfe_backward", "elapsed")}
    return dict(best, epochs=epoch, nfe_forward=per_epoch["nfe_forward"],
                nfe_backward=per_epoch["nfe_backward"], seconds_per_epoch=per_epoch["elapsed"],
                curves=curves,
                parameters={k: v.detach().cpu() for k, v in model.state_dict().items()})


def split_views(data, count=None):
    """One graph per standard split (masks of shape ``(N, splits)``, as the heterophily sets
    have), its masks that split's column; ``None`` for a graph with one split."""
    if data.train_mask.dim() == 1:
        return None
    total = data.train_mask.size(1)
    count = total if count is None else count
    if not 1 <= count <= total:
        raise SystemExit(f"--splits must lie in 1..{total}, got {count}")
    views = []
    for k in range(count):
        view = copy.copy(data)
        view.train_mask, view.val_mask, view.test_mask = (
            m[:, k] for m in (data.train_mask, data.val_mask, data.test_mask))
        views.append(view)
    return views


def main(argv=None):
    return run_example(report, parse_args(argv), "examples/node_classification.py")


def report(args, ctx):
    data, name = load(args)
    # Row-normalised bag-of-words features, as in Kipf and Welling and the GDE paper, unless
    # --features raw.
    if name != "synthetic" and args.features != "raw":
        data.x = data.x / data.x.sum(-1, keepdim=True).clamp(min=1e-12)
    if args.edges == "undirected":
        data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
    if not args.batch_size:  # mini-batches move to the device one at a time
        data = data.to(ctx.device)
    num_classes = int(data.y.max()) + 1
    views = split_views(data, args.splits)
    count = len(views) if views else args.seeds
    offset = SEARCH_SEEDS if args.search else 0
    runs = run_seeds(range(count), lambda k, saved, save: run(
        args, views[k] if views else data, num_classes, offset + k, ctx, saved, save),
        args.checkpoint, args.resume, config=settings(args), write=ctx.main)
    if not ctx.main:
        return None
    tests = [r["test"] for r in runs]
    summary = {
        "dataset": name, "model": args.model, "seeds": count, "search": args.search,
        "first_seed": offset,
        "splits": len(views) if views else None,
        "world_size": ctx.world_size, "batch_size": args.batch_size,
        "num_nodes": data.num_nodes,
        "test_acc_mean": None if args.search else st.mean(tests),
        "test_acc_std": None if args.search else st.pstdev(tests),
        "val_acc_mean": st.mean(r["val"] for r in runs),
        # The best test accuracy of any epoch: what selecting on the test set would give, an
        # upper bound on early stopping, not a result. It measures what selection costs.
        "test_acc_max_mean": None if args.search else
        st.mean(max(r["curves"]["test"], default=0.0) for r in runs),
        **{k: st.mean(r[k] for r in runs)
           for k in ("epochs", "nfe_forward", "nfe_backward", "seconds_per_epoch")},
        # Peak resident memory of this process (Linux reports KiB).
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    shown = "validation only" if args.search else \
        f"test accuracy {100 * summary['test_acc_mean']:.1f} ± {100 * summary['test_acc_std']:.1f}"
    print(f"{name} {args.model}: {shown} over {count} "
          f"{'split' if views else 'seed'}(s) "
          f"(val {100 * summary['val_acc_mean']:.1f}; NFE {summary['nfe_forward']:.0f} forward, "
          f"{summary['nfe_backward']:.0f} backward; {summary['seconds_per_epoch'] * 1e3:.0f} ms/epoch)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if args.plot:
        with figure(args.plot, 1, 2, figsize=(10, 4)) as (a, b):
            for i, r in enumerate(runs):
                a.plot(r["curves"]["loss"], label=f"seed {i}")
                b.plot(r["curves"]["val"], label=f"val, seed {i}")
                b.plot(r["curves"]["test"], "--", label=f"test, seed {i}")
            a.set(xlabel="epoch", ylabel="training loss", title=f"{args.model} on {name}")
            b.set(xlabel="epoch", ylabel="accuracy")
            b.legend(fontsize="small")
    return summary


if __name__ == "__main__":
    main()

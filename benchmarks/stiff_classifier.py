"""A GRAND-style diffusion classifier on Cora integrated to t = 18: explicit against implicit.

GRAND-l (Chamberlain et al., 2021) with its attention replaced by the fixed GCN operator: a
linear encoder, the diffusion ``dX/dt = (A_hat - I) X`` over [0, 18] (``LinearDiffusion``
without weights, so the implicit methods solve their stages by conjugate gradients with the
sparse operator), a linear decoder; dropout 0.5 on the input and before the decoder, Adam (lr
0.01, weight decay 5e-4), rtol 1e-3, atol 1e-4, the public split. Each solver trains the same
model from the same seed for ``--epochs`` epochs; the row reports the test accuracy at the
epoch of best validation accuracy, the NFE of one forward and one backward (operator products
counted as evaluations) and the seconds per epoch, the solvers alternating epoch by epoch in
one process so that they share the machine's load alike.

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python -m benchmarks.stiff_classifier

``A_hat - I`` has its spectrum in [-2, 0): the flow is long but not stiff, so an explicit
pair's stability limit (about 1.6 / 2 per step for dopri5) costs no more steps than its
accuracy does. The benchmark measures what that means for the implicit methods.
"""
from __future__ import annotations

import statistics as st
import time

import torch
import torch.nn.functional as F

from benchmarks.common import bench_args, write_results
from graphode.nn import GDEConv, LinearDiffusion

# (label, method, gradient): checkpointing replays the implicit steps exactly; "auto" and
# dopri5 also run with the adjoint, GRAND's own choice.
SOLVERS = [
    ("dopri5, adjoint", "dopri5", "adjoint"),
    ("auto, adjoint", "auto", "adjoint"),
    ("dopri5, checkpoint", "dopri5", "checkpoint"),
    ("trbdf2, checkpoint", "trbdf2", "checkpoint"),
    ("kvaerno5, checkpoint", "kvaerno5", "checkpoint"),
    ("expm, autograd", "expm", "autograd"),
    ("expm, checkpoint", "expm", "checkpoint"),
]


class DiffusionClassifier(torch.nn.Module):
    def __init__(self, features: int, hidden: int, classes: int, method: str, gradient: str,
                 t_end: float):
        super().__init__()
        self.encoder = torch.nn.Linear(features, hidden)
        self.flow = GDEConv(LinearDiffusion(-1, weight=False), t_span=(0.0, t_end),
                            method=method, gradient=gradient, rtol=1e-3, atol=1e-4)
        self.decoder = torch.nn.Linear(hidden, classes)

    def forward(self, x, edge_index):
        h = self.encoder(F.dropout(x, 0.5, self.training))
        h = self.flow(h, edge_index)
        return self.decoder(F.dropout(h, 0.5, self.training))


def load_cora(device):
    from graphode.data import load_planetoid
    try:
        return load_planetoid("Cora").to(device)
    except Exception as error:  # the classifier needs the real labels and split
        raise SystemExit(f"this benchmark needs Cora ({error}); set GRAPHODE_DATA or go "
                         "online") from error


def main(argv=None) -> list:
    args = bench_args(__doc__, argv, **{
        "--epochs": dict(type=int, default=100),
        "--seeds": dict(type=int, default=3),
        "--t-end": dict(type=float, default=18.0),
        "--solvers": dict(nargs="+", default=[f"{m}/{g}" for _, m, g in SOLVERS],
                          help="method/gradient pairs, e.g. dopri5/adjoint trbdf2/checkpoint")})
    device = args.device
    data = load_cora(device)
    chosen = [s for s in SOLVERS if f"{s[1]}/{s[2]}" in args.solvers]
    results = {label: dict(acc=[], seconds=[], nfe=[], nfe_backward=[]) for label, _, _ in chosen}
    for seed in range(args.seeds):
        runs = {}
        for label, method, gradient in chosen:
            torch.manual_seed(seed)
            model = DiffusionClassifier(data.num_features, 64, int(data.y.max()) + 1, method,
                                        gradient, args.t_end).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
            runs[label] = dict(model=model, opt=opt, best=-1.0, test=0.0,
                               gen=torch.Generator(device="cpu").manual_seed(seed))
        for _ in range(args.epochs):
            for label, run in runs.items():  # alternate: each solver sees the same load
                model, opt = run["model"], run["opt"]
                # the same dropout masks for every solver
                torch.manual_seed(int(torch.randint(0, 2 ** 31, (), generator=run["gen"])))
                start = time.perf_counter()
                model.train()
                opt.zero_grad()
                out = model(data.x, data.edge_index)
                F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                results[label]["seconds"].append(time.perf_counter() - start)
                stats = model.flow.stats
                results[label]["nfe"].append(stats.nfe)
                results[label]["nfe_backward"].append(stats.nfe_backward)
                model.eval()
                with torch.no_grad():
                    pred = model(data.x, data.edge_index).argmax(-1)
                val = (pred[data.val_mask] == data.y[data.val_mask]).float().mean().item()
                if val > run["best"]:
                    run["best"] = val
                    hits = pred[data.test_mask] == data.y[data.test_mask]
                    run["test"] = hits.float().mean().item()
        for label, run in runs.items():
            results[label]["acc"].append(100 * run["test"])
    base = st.median(results[chosen[0][0]]["seconds"])
    rows = []
    for label, r in results.items():
        acc = r["acc"]
        rows.append({"workload": f"GRAND-style diffusion classifier, Cora, t = {args.t_end:g}",
                     "solver": label,
                     "accuracy": f"{st.mean(acc):.1f} ± {st.pstdev(acc):.1f}",
                     "s_per_epoch": st.median(r["seconds"]),
                     "time_vs_first": st.median(r["seconds"]) / base,
                     "nfe_forward": st.median(r["nfe"]),
                     "nfe_backward": st.median(r["nfe_backward"])})
    write_results(f"stiff_classifier_{device.type}", rows,
                  ["workload", "solver", "accuracy", "s_per_epoch", "time_vs_first",
                   "nfe_forward", "nfe_backward"])
    return rows


if __name__ == "__main__":
    main()

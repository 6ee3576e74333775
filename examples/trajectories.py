"""Pedestrian trajectory forecasting on ETH/UCY (the GDE paper's multi-agent task).

Each window observes 8 positions (3.2 s at 2.5 Hz) of the agents present throughout and
predicts their next 12 (4.8 s); the benchmark's five scenes are evaluated leave-one-scene-out
(train on four, test on the fifth), scored by the average and final displacement errors
(ADE / FDE, metres). Models: ``gde`` (a second-order graph ODE whose interaction graph,
agents within about 2 m, is recomputed from the positions at every evaluation: see
:class:`graphode.models.TrajectoryGDE`), ``cv`` (constant velocity: the last observed step
repeated, a baseline that Schoeller et al., 2020, found hard to beat) and ``last``
(standing still).

    python examples/trajectories.py --model gde
    python examples/trajectories.py --model cv --scenes eth hotel --json out.json

``gde`` trains on the four other scenes; the last 10% of each training scene's windows (in
time) pick the epoch, and the test scene is scored once, with the chosen epoch.
"""
import argparse
import copy
import json
import statistics as st
import time

import torch

from graphode.data import SCENES, leave_one_out, load_eth_ucy
from graphode.models import TrajectoryGDE, pad_windows

from _common import add_flags, epochs

MODELS = ("gde", "cv", "last")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flags(p, "root")
    p.add_argument("--model", default="cv", choices=MODELS)
    p.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES),
                   help="test scenes (each one fold of leave-one-scene-out)")
    p.add_argument("--obs", type=int, default=8, help="observed steps")
    p.add_argument("--pred", type=int, default=12, help="predicted steps")
    p.add_argument("--json", help="write the ADE / FDE per scene here")
    add_flags(p, "hidden", "lr", "epochs", "patience", "batch_size", "seeds", hidden=32,
              lr=3e-3, epochs=20, patience=5, batch_size=32)
    args = p.parse_args(argv)
    if args.obs < 2 or args.pred < 1:
        p.error(f"--obs must be at least 2 (a velocity needs two positions) and --pred at "
                f"least 1, got {args.obs} and {args.pred}")
    return args


def predict(model, observed, pred):
    """``observed`` ``(A, obs, 2)`` -> predictions ``(A, pred, 2)``."""
    if isinstance(model, TrajectoryGDE):
        with torch.no_grad():
            return model(observed.unsqueeze(0), torch.ones(1, observed.size(0),
                                                            dtype=torch.bool), pred)[0]
    last = observed[:, -1:]
    if model == "last":
        return last.expand(-1, pred, -1)
    velocity = observed[:, -1:] - observed[:, -2:-1]
    steps = torch.arange(1, pred + 1, dtype=observed.dtype).view(1, -1, 1)
    return last + steps * velocity


def displacement_errors(prediction, truth):
    """Average and final displacement errors over the agents, ``(ADE, FDE)`` sums and the
    agent count (so scenes pool by agent)."""
    dist = (prediction - truth).norm(dim=-1)  # (A, pred)
    return float(dist.mean(1).sum()), float(dist[:, -1].sum()), dist.size(0)


def evaluate(args, scene, model=None):
    ade = fde = agents = 0
    for window in scene.windows:
        observed, truth = window[:, :args.obs], window[:, args.obs:]
        a, f, n = displacement_errors(predict(model or args.model, observed, args.pred), truth)
        ade, fde, agents = ade + a, fde + f, agents + n
    return {"ade": ade / agents, "fde": fde / agents, "windows": len(scene), "agents": agents}


def batches(windows, size, generator=None):
    """Windows in batches of similar agent counts (little padding), in random order."""
    order = sorted(range(len(windows)), key=lambda k: windows[k].size(0))
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    if generator is not None:
        chunks = [chunks[k] for k in torch.randperm(len(chunks), generator=generator)]
    for chunk in chunks:
        yield pad_windows([windows[k] for k in chunk], 0)


def train(args, train_scenes, seed):
    """A TrajectoryGDE trained on ``train_scenes``; the last 10% of each scene's windows
    (in time) pick the epoch."""
    torch.manual_seed(seed)
    fit, val = [], []
    for scene in train_scenes:
        cut = int(0.9 * len(scene.windows))
        fit += scene.windows[:cut]
        val += scene.windows[cut:]
    model = TrajectoryGDE(hidden=args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    progress = dict(best=dict(val=float("inf"), epoch=0, state=copy.deepcopy(model.state_dict())),
                    epoch=0, elapsed=0.0)
    for bar in epochs(progress, args.epochs, args.patience, f"gde seed {seed}", True):
        start = time.perf_counter()
        model.train()
        for pos, mask in batches(fit, args.batch_size, gen):
            opt.zero_grad()
            out = model(pos[:, :, :args.obs], mask, args.pred)
            err = (out - pos[:, :, args.obs:]).norm(dim=-1).mean(-1)  # ADE per agent
            loss = err[mask].mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        model.eval()
        total = count = 0.0
        with torch.no_grad():
            for pos, mask in batches(val, args.batch_size):
                out = model(pos[:, :, :args.obs], mask, args.pred)
                err = (out - pos[:, :, args.obs:]).norm(dim=-1).mean(-1)
                total, count = total + float(err[mask].sum()), count + int(mask.sum())
        progress["elapsed"] += time.perf_counter() - start
        score = total / count
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{score:.3f}")
        if score < progress["best"]["val"]:
            progress["best"] = dict(val=score, epoch=progress["epoch"],
                                    state=copy.deepcopy(model.state_dict()))
    model.load_state_dict(progress["best"]["state"])
    return model, progress


def main(argv=None):
    args = parse_args(argv)
    results = {}
    for test in args.scenes:
        train_names, test = leave_one_out(test)
        scene = load_eth_ucy(test, args.root, args.obs, args.pred)
        if args.model == "gde":
            train_scenes = [load_eth_ucy(s, args.root, args.obs, args.pred) for s in train_names]
            runs = []
            for seed in range(args.seeds):
                model, progress = train(args, train_scenes, seed)
                runs.append(dict(evaluate(args, scene, model), epochs=progress["epoch"],
                                 seconds_per_epoch=progress["elapsed"] / max(progress["epoch"], 1)))
            results[test] = {k: st.mean(r[k] for r in runs) for k in runs[0]}
            if args.seeds > 1:
                results[test].update({f"{k}_std": st.stdev(r[k] for r in runs)
                                      for k in ("ade", "fde")})
        else:
            results[test] = evaluate(args, scene)
        r = results[test]
        print(f"{test}: ADE {r['ade']:.2f} m, FDE {r['fde']:.2f} m ({r['windows']} windows, "
              f"{r['agents']} agent windows)")
    mean = {k: sum(r[k] for r in results.values()) / len(results) for k in ("ade", "fde")}
    print(f"{args.model}, mean over {len(results)} scenes: ADE {mean['ade']:.2f} m, "
          f"FDE {mean['fde']:.2f} m")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "obs": args.obs, "pred": args.pred,
                       "seeds": args.seeds if args.model == "gde" else None,
                       "scenes": results, "mean": mean}, f, indent=2)
    return results, mean


if __name__ == "__main__":
    main()

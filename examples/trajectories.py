"""Pedestrian trajectory forecasting on ETH/UCY (the GDE paper's multi-agent task).

Each window observes 8 positions (3.2 s at 2.5 Hz) of the agents present throughout and
predicts their next 12 (4.8 s); the benchmark's five scenes are evaluated leave-one-scene-out
(train on four, test on the fifth), scored by the average and final displacement errors
(ADE / FDE, metres). Models: ``cv`` (constant velocity: the last observed step repeated, a
baseline that Schoeller et al., 2020, found hard to beat) and ``last`` (standing still).

    python examples/trajectories.py --model cv
    python examples/trajectories.py --model cv --scenes eth hotel --json out.json
"""
import argparse
import json

import torch

from graphode.data import SCENES, leave_one_out, load_eth_ucy

from _common import add_flags

MODELS = ("cv", "last")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flags(p, "root")
    p.add_argument("--model", default="cv", choices=MODELS)
    p.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES),
                   help="test scenes (each one fold of leave-one-scene-out)")
    p.add_argument("--obs", type=int, default=8, help="observed steps")
    p.add_argument("--pred", type=int, default=12, help="predicted steps")
    p.add_argument("--json", help="write the ADE / FDE per scene here")
    args = p.parse_args(argv)
    if args.obs < 2 or args.pred < 1:
        p.error(f"--obs must be at least 2 (a velocity needs two positions) and --pred at "
                f"least 1, got {args.obs} and {args.pred}")
    return args


def predict(model, observed, pred):
    """``observed`` ``(A, obs, 2)`` -> predictions ``(A, pred, 2)``."""
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


def evaluate(args, scene):
    ade = fde = agents = 0
    for window in scene.windows:
        observed, truth = window[:, :args.obs], window[:, args.obs:]
        a, f, n = displacement_errors(predict(args.model, observed, args.pred), truth)
        ade, fde, agents = ade + a, fde + f, agents + n
    return {"ade": ade / agents, "fde": fde / agents, "windows": len(scene), "agents": agents}


def main(argv=None):
    args = parse_args(argv)
    results = {}
    for test in args.scenes:
        _, test = leave_one_out(test)  # the baselines need no training scenes
        scene = load_eth_ucy(test, args.root, args.obs, args.pred)
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
                       "scenes": results, "mean": mean}, f, indent=2)
    return results, mean


if __name__ == "__main__":
    main()

"""Traffic forecasting with graph neural ODEs on real sensor networks.

Trains a GDE-GRU (Poli et al., 2019: a graph GRU whose state flows by a graph neural ODE
between observations) next to its discrete baselines, a graph-convolutional GRU (T-GCN), a
plain GRU, the historical average and persistence (``--model last``: the last observed
snapshot), on the Los-loop speeds (207 sensors, 5-minute steps):

    python examples/traffic_forecasting.py
    python examples/traffic_forecasting.py --model gcgru --drop-prob 0.7 --json out.json
    python examples/traffic_forecasting.py --model gde-sde

Continuous-time models beside it: ``stg-ncde`` (a graph neural CDE driven by a spline of
the observations), ``stgode`` (tensor ODE blocks on the sensor and semantic graphs) and
``latent-gde`` (a latent graph ODE with an ODE-RNN encoder, trained on its evidence lower
bound, which it reports on the test part); ``gru-d`` is the discrete baseline for missing
data.

PyTorch Geometric Temporal's datasets (``--dataset pedalme``, ``england-covid``,
``montevideo-bus``, ``chickenpox``) are read as its loaders read them: their default lags as
the history, one step ahead, the windows split in time with the same test part as its
``temporal_signal_split``; zero counts are readings, not missing values. Besides MAE and
RMSE the script reports the test MSE on that library's scale.

``--model gde-sde`` is the stochastic GDE-GRU: its forecast is a graph neural SDE whose sample
paths are its uncertainty. It trains on the CRPS of its samples and reports, next to the
median's MAE / RMSE / MAPE, the CRPS and the coverage and width of its 50% and 90% intervals.

Splits the series chronologically (70 / 10 / 20 by default), fits the scaler on the training
part only, keeps the epoch with the best validation MAE and reports masked MAE / RMSE / MAPE on
the test part at 15, 30, 45 and 60 minutes. ``--drop-prob p`` drops each observed snapshot
with probability p (irregular sampling): the GDE-GRU flows over the true time gaps, the
discrete models are given each gap as an input.
"""
import argparse
import copy
import json
import math
import statistics as st
import time

import torch

from graphode import distributed
from graphode.data import (
    StandardScaler,
    Windows,
    chronological_split,
    drop_readings,
    drop_steps,
    load_series,
    semantic_graph,
    sliding_windows,
    window_masks,
)
from graphode.metrics import (
    crps_ensemble,
    forecast_metrics,
    masked_huber,
    masked_mae,
    masked_mse,
    probabilistic_metrics,
)
from graphode.models import ChangeForecaster
from graphode.nn import (
    GDEGRU,
    GRUD,
    STGODE,
    GraphNCDE,
    HistoricalAverage,
    LatentGDE,
    Persistence,
    RecurrentForecaster,
    SolverStatsRecorder,
    StochasticGDEGRU,
    batch_graphs,
)
from graphode.training import check_loss, restore_training_state, run_seeds, training_state

from _common import add_flags, check_args, epochs, figure, run_example, settings

MODELS = ("ha", "last", "gru", "gru-d", "gcgru", "gde-gru", "gde-sde", "stg-ncde", "stgode",
          "latent-gde")
LOSSES = {"mae": masked_mae, "mse": masked_mse, "huber": masked_huber,
          # the sample forecasts of gde-sde: a proper score of the whole distribution
          "crps": crps_ensemble}
SAMPLING = ("gde-sde",)  # models whose forecasts are samples, (S, B, Q, N)
GENERATIVE = ("latent-gde",)  # models trained on their evidence lower bound
#: PyTorch Geometric Temporal's datasets, read as its loaders read them: their default lags as
#: the history, one step ahead, and its temporal_signal_split of the windows (the first 80%
#: for training). The last 20% of the windows is the test part here too; the validation part
#: is the last 10% of its training part.
PYG_TEMPORAL = {"chickenpox": 4, "pedalme": 4, "england-covid": 8, "montevideo-bus": 4}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="Los-loop", help="Los-loop, METR-LA, PEMS-BAY, PEMS04, "
                   "PEMS08, SZ-taxi, chickenpox, ...")
    add_flags(p, "root")
    p.add_argument("--model", default="gde-gru", choices=MODELS)
    p.add_argument("--history", type=int,
                   help="input steps (default: 12; the loader's lags on PyTorch Geometric "
                        "Temporal's datasets)")
    p.add_argument("--horizon", type=int,
                   help="forecast steps (default: 12; 1 on PyTorch Geometric Temporal's "
                        "datasets)")
    p.add_argument("--drop-prob", type=float, default=0.0,
                   help="drop each snapshot of the series with this probability (irregular "
                        "sampling; drawn once per series step, so overlapping windows agree)")
    p.add_argument("--missing-prob", type=float, default=0.0,
                   help="drop each sensor reading with this probability (missing values; "
                        "drawn once per series step and sensor)")
    p.add_argument("--dynamic-graph", action="store_true",
                   help="gde-gru and gde-sde on a dataset with a graph per time step "
                        "(england-covid): each input step uses its own day's graph, switched "
                        "at the observations; by default every model uses the mean graph")
    p.add_argument("--time-of-day", action=argparse.BooleanOptionalAction, default=False,
                   help="give the models the time of day (sine and cosine of the daily phase) "
                        "as two more input channels")
    p.add_argument("--split", default="0.7,0.1,0.2", help="train,val,test fractions (in time)")
    p.add_argument("--split-on", choices=("series", "windows"),
                   help="split the series in time and cut windows inside each part (the "
                        "default), or cut the windows first and split them in time as PyTorch "
                        "Geometric Temporal does (the default on its datasets; overlapping "
                        "windows share steps across the parts' borders)")
    add_flags(p, "hidden", "method", "step_size", hidden=64,
              method=dict(default="midpoint", help="solver of the GDE-GRU flow"),
              step_size=dict(default=1.0, help="GDE-GRU solver step, in sampling intervals "
                                               "(0 = adaptive)"))
    add_flags(p, "lr", "weight_decay", lr=3e-3, weight_decay=0.0)
    p.add_argument("--loss", choices=(*LOSSES, "elbo"),
                   help="training loss over the observed targets (default: mae; crps, the "
                        "only choice, for gde-sde; elbo, the only choice, for latent-gde: "
                        "the negative evidence lower bound of the window and its future)")
    p.add_argument("--samples", type=int, default=4,
                   help="gde-sde: sample paths per forecast in training")
    p.add_argument("--eval-samples", type=int, default=64,
                   help="gde-sde: sample paths per forecast on the test part")
    p.add_argument("--val-samples", type=int, default=16,
                   help="gde-sde: sample paths per forecast for the validation CRPS")
    p.add_argument("--noise-scale", type=float, default=0.1,
                   help="gde-sde: initial diffusion scale of the forecast SDE")
    add_flags(p, "epochs", "patience", "batch_size", "seeds", "distributed", "device", "json",
              epochs=dict(help="most epochs (default: 20; 100 on PyTorch Geometric Temporal's "
                               "datasets, whose training parts are small)"),
              patience=dict(help="stop after this many epochs without a better validation "
                                 "loss (default: 5; 20 on PyTorch Geometric Temporal's "
                                 "datasets)"),
              batch_size=32,
              json=dict(help="write the test metrics here"))
    p.add_argument("--plot", help="write predicted against true speed for a few sensors (PNG)")
    add_flags(p, "checkpoint", "resume")
    args = p.parse_args(argv)
    lags = PYG_TEMPORAL.get(args.dataset.lower().replace("_", "-"))
    if args.history is None:
        args.history = lags or 12
    if args.horizon is None:
        args.horizon = 1 if lags else 12
    if args.split_on is None:
        args.split_on = "windows" if lags else "series"
    if args.epochs is None:
        args.epochs = 100 if lags else 20
    if args.patience is None:
        args.patience = 20 if lags else 5
    check_args(p, args)
    if args.dynamic_graph and args.model not in ("gde-gru", "gde-sde"):
        p.error(f"--dynamic-graph goes with --model gde-gru or gde-sde, whose flow switches "
                f"graphs at the observations, not --model {args.model}")
    sampling, generative = args.model in SAMPLING, args.model in GENERATIVE
    if args.loss is None:
        args.loss = "crps" if sampling else "elbo" if generative else "mae"
    if (args.loss == "crps") != sampling:
        p.error(f"--loss crps scores sample forecasts: it goes with --model gde-sde alone, "
                f"not --model {args.model} --loss {args.loss}")
    if (args.loss == "elbo") != generative:
        p.error(f"--loss elbo is the latent model's own objective: it goes with --model "
                f"latent-gde alone, not --model {args.model} --loss {args.loss}")
    if sampling and min(args.samples, args.eval_samples, args.val_samples) < 2:
        p.error(f"--samples, --val-samples and --eval-samples must be at least 2 (the CRPS "
                f"compares samples), got {args.samples}, {args.val_samples} and "
                f"{args.eval_samples}")
    for flag in ("drop_prob", "missing_prob"):
        if not 0.0 <= getattr(args, flag) < 1.0:
            p.error(f"--{flag.replace('_', '-')} must lie in [0, 1), got {getattr(args, flag)}")
    if sampling and not args.noise_scale > 0:
        p.error(f"--noise-scale must be positive, got {args.noise_scale}")
    return args


def prepare(args):
    """Windows of each split: scaled inputs, raw targets, observation masks."""
    series = load_series(args.dataset, args.root)
    ratios = [float(v) for v in args.split.split(",")]
    span = args.history + args.horizon  # steps in one window
    if args.split_on == "windows":  # window k covers steps k .. k + span - 1
        parts = chronological_split(series.num_steps - span + 1, ratios, floor=True)
        steps = [slice(part.start, part.stop + span - 1) for part in parts]
    else:
        steps = list(chronological_split(series.num_steps, ratios))
    for name, part in zip(("train", "validation", "test"), steps):
        if part.stop - part.start < span:
            raise SystemExit(f"{series.name} has {series.num_steps} steps: its {name} part "
                             f"({part.stop - part.start} steps) holds no window of "
                             f"--history {args.history} + --horizon {args.horizon}; use "
                             f"shorter windows, another --split, or --split-on windows")
    series.dynamic = args.dynamic_graph
    if args.dynamic_graph and series.snapshots is None:
        raise SystemExit(f"--dynamic-graph needs a graph per time step, and {series.name} has "
                         f"one fixed graph; run without --dynamic-graph")
    observed = observation_mask(args, series.num_steps, series.signal.size(1))
    seen = None if observed is None else observed if observed.dim() == 2 \
        else observed.unsqueeze(1)
    # The scaler sees the observed training readings alone (and skips the series' missing
    # marker: zeros in traffic speeds).
    train = series.signal[steps[0]]
    shown = train if seen is None else train[seen[steps[0]].expand_as(train)]
    scaler = StandardScaler(missing=series.missing).fit(shown)
    if seen is not None:
        train = train * seen[steps[0]]
    inputs = scaler.transform(series.signal).unsqueeze(-1)
    if seen is not None:  # what was not observed is not shown: the scaled mean instead
        inputs = inputs * seen.unsqueeze(-1)
    if args.time_of_day:
        inputs = torch.cat([inputs, time_of_day(series)], -1)
    if args.model == "stgode":  # its second graph, from the observed training part alone
        per_day = round(1440 / series.interval) if series.interval else None
        series.semantic = None if series.num_nodes < 2 else semantic_graph(
            train, per_day if per_day and per_day <= len(train) else None,
            k=min(5, series.num_nodes - 1),
            missing=series.missing if seen is None else 0.0)
    splits = {}
    for name, part in zip(("train", "val", "test"), steps):
        x, _ = sliding_windows(inputs[part], args.history, args.horizon)
        _, y = sliding_windows(series.signal[part], args.history, args.horizon)
        mask = torch.ones(len(x), args.history, dtype=torch.bool) if observed is None \
            else window_masks(observed[part], args.history, args.horizon)
        splits[name] = Windows(x.contiguous(), y.contiguous(), mask.contiguous(),
                               torch.arange(len(x)) + part.start)
    return series, scaler, splits


def observation_mask(args, num_steps, num_nodes):
    """What the models observe, drawn once for the series (the same for every model and
    seed): ``None`` (everything), observed steps ``(T,)`` under ``--drop-prob``, or observed
    readings ``(T, N)`` under ``--missing-prob``. Targets are never masked."""
    if not (args.drop_prob or args.missing_prob):
        return None
    gen = torch.Generator().manual_seed(1234)
    steps = drop_steps(num_steps, args.drop_prob, args.history, gen)
    if not args.missing_prob:
        return steps
    return steps.unsqueeze(1) & drop_readings(num_steps, num_nodes, args.missing_prob, gen)


def time_of_day(series):
    """``(T, N, 2)``: sine and cosine of each step's phase in the day, counted from the first
    step (the series need not start at midnight: only the daily period matters)."""
    if not series.interval:
        raise SystemExit(f"--time-of-day needs the sampling interval in minutes, which "
                         f"{series.name} does not give; run without --time-of-day")
    phase = torch.arange(series.num_steps) * (2 * math.pi * series.interval / 1440.0)
    days = torch.stack([phase.sin(), phase.cos()], -1)
    return days.unsqueeze(1).expand(-1, series.signal.size(1), -1)


def build(args, horizon, channels, series=None):
    if args.model == "ha":
        return HistoricalAverage()
    if args.model == "last":
        return Persistence()
    # Learned models predict the change from the last observed snapshot, all alike.
    step = args.step_size or None
    if args.model == "gde-gru":
        return ChangeForecaster(GDEGRU(channels, args.hidden, 1, method=args.method,
                                       step_size=step))
    if args.model == "stg-ncde":
        return ChangeForecaster(GraphNCDE(channels, args.hidden, horizon, method=args.method,
                                          step_size=step))
    if args.model == "stgode":
        return ChangeForecaster(STGODE(channels, args.hidden, horizon, args.history,
                                       series.num_nodes, semantic=series.semantic))
    if args.model == "latent-gde":  # generative: it reconstructs the level, no change wrapper
        return LatentGDE(channels, args.hidden, method=args.method, step_size=step)
    if args.model == "gru-d":
        return ChangeForecaster(GRUD(channels, args.hidden, horizon))
    if args.model == "gde-sde":
        return ChangeForecaster(StochasticGDEGRU(
            channels, args.hidden, 1, method=args.method, step_size=step,
            noise_scale=args.noise_scale, sde_dt=args.step_size or 1.0,
            num_samples=args.samples, eval_samples=args.eval_samples))
    return ChangeForecaster(RecurrentForecaster(channels, args.hidden, horizon,
                                                graph=args.model == "gcgru",
                                                time_gaps=irregular(args)))


def irregular(args):
    return args.drop_prob > 0 or args.missing_prob > 0


def forecast(model, graph, times, query, x, mask, scaler, start=None):
    """Forecasts in original units: ``(B, Q, N)``, or samples ``(S, B, Q, N)``. With
    ``--dynamic-graph``, ``start`` (the windows' first steps) picks each step's graph."""
    if isinstance(model, (HistoricalAverage, Persistence)):
        x = x[..., :1]  # the speeds alone
    extra = {}
    if getattr(graph, "dynamic", False):
        extra["step_graphs"] = step_graphs(graph, start, x.size(1))
    pred = model(x, graph.edge_index, times, query, mask, graph.edge_weight,
                 **extra).squeeze(-1)
    return scaler.inverse_transform(pred)


def step_graphs(series, start, history):
    """The graph of every input step of a batch of windows: step ``k`` of the window that
    starts at series step ``s`` gets the graph of step ``s + k``."""
    return [batch_graphs([series.device_snapshots[int(s) + k] for s in start.tolist()],
                         series.num_nodes) for k in range(history)]


def predict(model, windows, graph, times, query, scaler, batch_size, device):
    model.eval()
    out = []
    with torch.no_grad():
        for x, _, mask, idx in windows.batches(batch_size, index=True):
            out.append(forecast(model, graph, times, query, x.to(device), mask.to(device),
                                scaler, windows.start[idx]).cpu())
    return torch.cat(out, dim=-3)  # along the windows, before (Q, N)


def run(args, series, scaler, splits, seed, ctx=None, saved=None, save=None):
    """Train one seed and forecast the test part. ``saved``: a checkpoint of this seed to
    continue from; ``save(state)`` is called after every epoch."""
    ctx = ctx or distributed.Context(device=torch.device(args.device))
    torch.manual_seed(seed)
    device = ctx.device
    series.edge_index = series.edge_index.to(device)
    if series.edge_weight is not None:
        series.edge_weight = series.edge_weight.to(device)
    if series.dynamic:
        series.device_snapshots = [(ei.to(device), None if ew is None else ew.to(device))
                                   for ei, ew in series.snapshots]
    times = torch.arange(args.history, dtype=torch.float32, device=device)
    query = times[-1] + torch.arange(1, args.horizon + 1, dtype=torch.float32, device=device)
    model = build(args, args.horizon, splits["train"].x.size(-1), series).to(device)
    def evaluate(split):
        if args.model in SAMPLING:
            model.forecaster.eval_samples = args.eval_samples if split == "test" \
                else args.val_samples
        return predict(model, splits[split], series, times, query, scaler, args.batch_size,
                       device)

    params = list(model.parameters())
    net = ctx.wrap(model) if params else model
    selection = "mae" if args.loss == "elbo" else args.loss  # what picks the epoch
    train = splits["train"]
    if ctx.distributed:  # the same number of batches on every rank
        train = train.subset(ctx.shard(torch.arange(len(train)), equal=True))
    progress = dict(best=dict(val=float("inf"), epoch=0, state=copy.deepcopy(model.state_dict())),
                    epoch=0, nfe=[], elapsed=0.0)
    if params:
        opt = torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        if saved is not None:
            progress = restore_training_state(saved, model, opt)
            gen.set_state(progress.pop("shuffle"))
        for bar in epochs(progress, args.epochs, args.patience, f"{args.model} seed {seed}",
                          ctx.main):
            start = time.perf_counter()
            model.train()
            for x, y, mask, idx in train.batches(args.batch_size, shuffle=True, generator=gen,
                                                 index=True):
                opt.zero_grad()
                with SolverStatsRecorder(model) as recorded:
                    pred = forecast(net, series, times, query, x.to(device), mask.to(device),
                                    scaler, train.start[idx])
                if args.loss == "elbo":
                    bound, readings = window_elbo(model, x.to(device), mask.to(device), pred,
                                                  y.to(device), scaler, series.missing)
                    loss = -bound / readings.clamp(min=1)
                else:
                    loss = LOSSES[args.loss](pred, y.to(device), missing=series.missing)
                check_loss(loss.item(), progress["epoch"])  # before the step: parameters stay good
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                if recorded.calls:
                    progress["nfe"].append(recorded.stats.nfe)
            val = float(LOSSES[selection](evaluate("val"), splits["val"].y,
                                          missing=series.missing))
            progress["elapsed"] += time.perf_counter() - start
            bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val:.3f}")
            if val < progress["best"]["val"]:
                progress["best"] = dict(val=val, epoch=progress["epoch"],
                                        state=copy.deepcopy(model.state_dict()))
            if save is not None:
                save(training_state(model, opt, shuffle=gen.get_state(), **progress))
    best, epoch, nfe, elapsed = (progress[k] for k in ("best", "epoch", "nfe", "elapsed"))
    seconds = elapsed / max(epoch, 1)
    model.load_state_dict(best["state"])
    pred, target = evaluate("test"), splits["test"].y
    extra = {}
    scoring = dict(steps=horizons(args.horizon), interval=series.interval,
                   missing=series.missing)
    if args.model in SAMPLING:  # the median is the point forecast
        extra["probabilistic"] = probabilistic_metrics(pred, target, **scoring)
        pred = pred.median(0).values
    if args.model in GENERATIVE:
        extra["elbo"] = test_elbo(model, splits["test"], series, times, query, scaler,
                                  args.batch_size, device)
    if args.dataset.lower().replace("_", "-") in PYG_TEMPORAL:
        extra["mse_pyg_temporal"] = pyg_temporal_mse(pred, target, series, scoring["steps"])
    return dict(metrics=forecast_metrics(pred, target, **scoring),
                pooled=forecast_metrics(pred, target, pooled=True, **scoring),
                val_loss=best["val"], epochs=epoch, seconds_per_epoch=seconds,
                nfe_per_batch=st.mean(nfe) if nfe else 0, pred=pred, **extra)


def horizons(horizon):
    """The forecast steps reported: 3, 6, 9 and 12 (15 to 60 minutes of 5-minute traffic
    data) up to the horizon, or every step of a shorter one."""
    return [h for h in (3, 6, 9, 12) if h <= horizon] or list(range(1, horizon + 1))


def pyg_temporal_mse(pred, target, series, steps):
    """The test MSE on the scale PyTorch Geometric Temporal's loaders give the data, so that
    its numbers compare: england-covid and montevideo-bus z-scored per node over the whole
    series (its scaler sees the test part too; the models here never do), pedalme and
    chickenpox as stored."""
    scale = torch.ones(series.num_nodes)
    if series.name in ("england-covid", "montevideo-bus"):
        scale = series.signal.double().std(0, unbiased=False).float()
        scale = scale + 1e-10 if series.name == "england-covid" else scale
    err = (pred - target) / scale
    return {f"step{h}": float(err[:, h - 1].pow(2).mean()) for h in steps}


def window_elbo(model, x, mask, pred, y, scaler, missing):
    """The latent model's evidence lower bound, summed, and the readings it scored, on the
    z-scored data, of the window it read and of the targets (``pred``, ``y`` in original
    units)."""
    seen = None if missing is None else y != missing
    return model.evidence(x, mask, scaler.transform(pred).unsqueeze(-1),
                          scaler.transform(y).unsqueeze(-1), seen)


def test_elbo(model, windows, series, times, query, scaler, batch_size, device):
    """The test part's ELBO per reading (one posterior draw per window, the same draws at
    every call), on the z-scored data: the bound on the log-likelihood of each window's
    observed history and its future, with the posterior read from the history alone."""
    model.eval()
    model.sample_posterior = True
    total, count = 0.0, 0
    devices = [device] if device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        for x, y, mask, idx in windows.batches(batch_size, index=True):
            x, y, mask = x.to(device), y.to(device), mask.to(device)
            pred = forecast(model, series, times, query, x, mask, scaler, windows.start[idx])
            bound, readings = window_elbo(model, x, mask, pred, y, scaler, series.missing)
            total, count = total + float(bound), count + int(readings)
    model.sample_posterior = None
    return total / max(count, 1)


def plot(path, pred, target, title, step=3, sensors=(0, 1, 2)):
    with figure(path, len(sensors), 1, figsize=(10, 2.5 * len(sensors)), sharex=True) as axes:
        for ax, s in zip(axes, sensors):
            ax.plot(target[:, step - 1, s].numpy(), label="true", lw=1)
            ax.plot(pred[:, step - 1, s].numpy(), label=f"predicted ({step} steps ahead)", lw=1)
            ax.set_ylabel(f"sensor {s}")
        axes[0].set_title(title)
        axes[0].legend(fontsize="small")
        axes[-1].set_xlabel("test window")


def main(argv=None):
    return run_example(report, parse_args(argv), "examples/traffic_forecasting.py")


def report(args, ctx):
    series, scaler, splits = prepare(args)
    runs = run_seeds(range(args.seeds),
                     lambda seed, saved, save: run(args, series, scaler, splits, seed, ctx,
                                                   saved, save),
                     args.checkpoint, args.resume, config=settings(args), write=ctx.main)
    if not ctx.main:
        return None
    metrics, pooled = ({h: {k: st.mean(r[key][h][k] for r in runs)
                            for k in ("mae", "rmse", "mape")}
                        for h in runs[0][key]} for key in ("metrics", "pooled"))
    summary = {"dataset": series.name, "model": args.model, "split": args.split,
               "dynamic_graph": args.dynamic_graph,
               "split_on": args.split_on, "history": args.history, "horizon": args.horizon,
               "world_size": ctx.world_size,
               "drop_prob": args.drop_prob, "missing_prob": args.missing_prob,
               "seeds": args.seeds, "metrics": metrics,
               # T-GCN's basis: each horizon pools every step up to it.
               "metrics_pooled": pooled,
               # the spread over seeds (sample standard deviation; 0 for one seed)
               "metrics_std": {h: {k: st.stdev(r["metrics"][h][k] for r in runs)
                                   if len(runs) > 1 else 0.0 for k in ("mae", "rmse", "mape")}
                               for h in runs[0]["metrics"]},
               "epochs": st.mean(r["epochs"] for r in runs),
               "seconds_per_epoch": st.mean(r["seconds_per_epoch"] for r in runs),
               "nfe_per_batch": st.mean(r["nfe_per_batch"] for r in runs)}
    if "elbo" in runs[0]:  # per reading, on the z-scored data
        summary["elbo"] = st.mean(r["elbo"] for r in runs)
    if "mse_pyg_temporal" in runs[0]:  # mean and spread over seeds
        summary["mse_pyg_temporal"] = {
            h: {"mean": st.mean(r["mse_pyg_temporal"][h] for r in runs),
                "std": st.stdev(r["mse_pyg_temporal"][h] for r in runs) if len(runs) > 1
                else 0.0} for h in runs[0]["mse_pyg_temporal"]}
    if "probabilistic" in runs[0]:
        summary["probabilistic"] = {h: {k: st.mean(r["probabilistic"][h][k] for r in runs)
                                        for k in row}
                                    for h, row in runs[0]["probabilistic"].items()}
    print(f"{series.name} {args.model} (drop {args.drop_prob:g}, missing "
          f"{args.missing_prob:g}, split {args.split}, "
          f"{args.seeds} seed(s), {summary['seconds_per_epoch']:.1f} s/epoch): " + "; ".join(
              f"{h} MAE {m['mae']:.2f} RMSE {m['rmse']:.2f} MAPE {100 * m['mape']:.1f}%"
              for h, m in metrics.items()))
    if "elbo" in summary:
        print(f"  test ELBO {summary['elbo']:.3f} per reading (z-scored data)")
    for h, m in summary.get("mse_pyg_temporal", {}).items():
        print(f"  {h}: MSE {m['mean']:.4f} on PyTorch Geometric Temporal's scale")
    for h, m in summary.get("probabilistic", {}).items():
        print(f"  {h}: CRPS {m['crps']:.2f}, 50% interval covers {100 * m['coverage50']:.1f}% "
              f"(width {m['width50']:.2f}), 90% covers {100 * m['coverage90']:.1f}% "
              f"(width {m['width90']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if args.plot:
        plot(args.plot, runs[0]["pred"], splits["test"].y, f"{args.model} on {series.name}",
             step=min(3, args.horizon))
    return summary


if __name__ == "__main__":
    main()

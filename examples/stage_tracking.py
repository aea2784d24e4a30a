"""Which stage of which model costs the most CO2e? A real pipeline, every stage metered.

    python examples/stage_tracking.py                        # region DEU, PUE 1.0, records kept locally
    python examples/stage_tracking.py --region FRA --pue 1.4 --budget-g 0.001
    python examples/stage_tracking.py --publish --task PROBLEM_ID     # also on the bus, for that task

In the spirit of carbon-aware pipeline studies that meter each stage of each model's pipeline (not
only training), four models predict the flank wear of examples/data/cnc_tool_wear.csv (the last
column): a decision tree (DT), a random forest (RF) and gradient boosting (GB) from scikit-learn,
and a small torch MLP whose training is forecast live, epoch by epoch. Each model runs the whole
pipeline: profile, clean, featurize, split, scale, train, evaluate, explain (permutation
importance). The table has one row per model, one column per stage in gCO2e, and the test R².

On a machine without a readable RAPL counter the CPU figures are the hardware node's declared
estimate, not a measurement; the output says which method was used and what it assumed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from sustainml import msg
from sustainml.cli import EXIT_CODES
from sustainml.exceptions import SustainMLError
from sustainml.problem import task_text
from sustainml.report import describe_dominance
from sustainml.tracking import Tracker

DATA = Path(__file__).resolve().parent / "data" / "cnc_tool_wear.csv"
SEED = 0


class TorchMLP(BaseEstimator, RegressorMixin):
    """A two-layer torch MLP with a scikit-learn face (``predict``, ``score``), so that the same
    evaluate and explain stages serve every model; ``fit_epoch`` lets the tracker meter each epoch."""

    def __init__(self, hidden: int = 64, lr: float = 3e-3, batch_size: int = 32) -> None:
        self.hidden = hidden
        self.lr = lr
        self.batch_size = batch_size

    def start(self, n_features: int) -> TorchMLP:
        torch.manual_seed(SEED)
        self.net_ = torch.nn.Sequential(torch.nn.Linear(n_features, self.hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(self.hidden, self.hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(self.hidden, 1))
        self.optimiser_ = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        return self

    def fit_epoch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One pass over the data; the mean training loss (MSE)."""
        xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32).unsqueeze(1)
        order = torch.randperm(len(xs))
        total = 0.0
        for i in range(0, len(xs), self.batch_size):
            batch = order[i:i + self.batch_size]
            self.optimiser_.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net_(xs[batch]), ys[batch])
            loss.backward()
            self.optimiser_.step()
            total += loss.item() * len(batch)
        return total / len(xs)

    def fit(self, x: np.ndarray, y: np.ndarray) -> TorchMLP:   # scikit-learn's protocol; not used here
        self.start(x.shape[1])
        for _ in range(20):
            self.fit_epoch(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net_(torch.as_tensor(x, dtype=torch.float32)).squeeze(1).numpy()


MODELS: dict[str, Callable[[], BaseEstimator]] = {
    "DT": lambda: DecisionTreeRegressor(max_depth=8, random_state=SEED),
    "RF": lambda: RandomForestRegressor(n_estimators=100, max_depth=12, random_state=SEED, n_jobs=1),
    "GB": lambda: GradientBoostingRegressor(n_estimators=150, max_depth=3, random_state=SEED),
    "MLP": lambda: TorchMLP(),
}


def run_pipeline(tracker: Tracker, run: str, model: BaseEstimator, *, epochs: int, budget_co2_g: float,
                 console: Console) -> float:
    """Every stage of one model's pipeline, each metered; the test R²."""
    with tracker.stage("profile", run=run):
        frame = pd.read_csv(DATA)
        target = frame.columns[-1]
        profile = frame.describe().T.assign(missing=frame.isna().sum())
    with tracker.stage("clean", run=run):
        frame = frame.dropna(subset=[target]).drop_duplicates()
        frame = frame.fillna(profile["50%"])                      # medians from the profile
        low, high = profile["min"], profile["max"]
        frame = frame.clip(lower=low, upper=high, axis=1)
    with tracker.stage("featurize", run=run):
        features = frame.drop(columns=[target])
        features["removal_rate"] = features["feed_mm_per_rev"] * features["depth_of_cut_mm"] * features["spindle_rpm"]
        features["force_x_minutes"] = features["cutting_force_n"] * features["cutting_minutes"]
        features["log_minutes"] = np.log1p(features["cutting_minutes"])
        x, y = features.to_numpy(np.float64), frame[target].to_numpy(np.float64)
    with tracker.stage("split", run=run):
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED)
    with tracker.stage("scale", run=run):
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    if isinstance(model, TorchMLP):
        model.start(x_train.shape[1])
        forecasts: list[msg.TrainingForecast] = []
        with tracker.training(run=run, planned_epochs=epochs, budget_co2_g=budget_co2_g,
                              on_forecast=forecasts.append) as training:
            for _ in range(epochs):
                with training.epoch():
                    model.fit_epoch(x_train, y_train)
                if training.exceeds_budget:
                    console.print(f"[yellow]{run}: stopped after {len(training.epochs)} epochs[/]: "
                                  f"{training.forecast.note}")
                    break
        if forecasts:
            early = forecasts[min(2, len(forecasts) - 1)]
            console.print(f"{run} training: after {early.epochs_done} of {early.epochs_planned} epochs the forecast was "
                          f"{early.predicted_energy_j:.3g} J ({early.predicted_energy_low_j:.3g} to "
                          f"{early.predicted_energy_high_j:.3g} J at {early.interval_level:.0%}); "
                          f"{len(training.epochs)} epochs drew {training.energy_so_far_j:.3g} J", soft_wrap=True)
    else:
        with tracker.stage("train", run=run):
            model.fit(x_train, y_train)
    with tracker.stage("evaluate", run=run):
        r2 = r2_score(y_test, model.predict(x_test))
    with tracker.stage("explain", run=run):
        permutation_importance(model, x_test, y_test, n_repeats=3, random_state=SEED, scoring="r2")
    return float(r2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", default="", help="where it runs: 'DEU', 'France', 'gcp:europe-west1'... "
                        "(default DEU, or the task's training region with --publish)")
    parser.add_argument("--pue", type=float, default=1.0, help="the facility's PUE (default 1.0)")
    parser.add_argument("--epochs", type=int, default=30, help="MLP training epochs (default 30)")
    parser.add_argument("--budget-g", type=float, default=0.0, help="MLP training budget, gCO2e (0 = none)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--store", default=None, help="run store file (default: $SUSTAINML_RUN_STORE or "
                        "~/.local/share/sustainml/runs.sqlite)")
    parser.add_argument("--publish", action="store_true", help="also publish on the bus, for --task")
    parser.add_argument("--task", default=None, help="PROBLEM_ID or PROBLEM_ID/ITERATION of a pipeline task, as `sustainml submit` printed it")
    args = parser.parse_args(argv)
    console = Console()
    # The MLP's matrices are tiny: one thread is faster than two here, and on a busy machine idle
    # OpenMP workers spin, which the CPU estimate would count as this pipeline's energy.
    torch.set_num_threads(1)
    region = args.region or ("" if args.publish else "DEU")
    try:
        tracker = Tracker(region=region, pue=args.pue, store=args.store, task_id=args.task, publish=args.publish)
    except (SustainMLError, ValueError) as e:
        print(f"stage_tracking: {e}", file=sys.stderr)
        return next((code for kind, code in EXIT_CODES.items() if isinstance(e, kind)), 2)
    with tracker:
        r2 = {run: run_pipeline(tracker, run, MODELS[run](), epochs=args.epochs, budget_co2_g=args.budget_g,
                                console=console)
              for run in args.models}
        tracker.print_table(extra_columns={"R²": {run: f"{value:.3f}" for run, value in r2.items()}},
                            title=f"CNC tool wear: gCO2e per stage ({tracker.devices}, {tracker.region.code})")
        console.print("Dominant stage: " + describe_dominance(tracker.records))
        for source in tracker.sources:
            if source.method == "estimate":
                console.print(f"{source.device}: {source.assumptions}", soft_wrap=True)   # says "estimate, not a measurement"
        where = f"task {task_text(tracker.task_id)}, " if args.publish else ""
        console.print(f"{len(tracker.records)} stage records kept ({where}{tracker.store.path}).", soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

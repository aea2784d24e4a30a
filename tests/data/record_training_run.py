"""Record a real training run's energy counter at every epoch boundary, for the forecast replay test.

    python tests/data/record_training_run.py            # writes tests/data/recorded_training_run.json

A small real torch training on this machine's CPU: an MLP regressing the flank wear of
examples/data/cnc_tool_wear.csv (missing cells imputed with column medians, features standardised),
for EPOCHS epochs. The energy source is the one the hardware node would pick here
(``make_energy_source("cpu")``): RAPL where readable, else the declared estimate, and the JSON says
which (``method``, ``assumptions``). The counter is read raw (cumulative mJ) before the first
epoch and after each one, with the time on a monotonic clock; nothing is computed from the
readings here, so the replay test sees exactly what a live tracker would have seen.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sustainml.energy import make_energy_source  # noqa: E402

OUT = Path(__file__).with_name("recorded_training_run.json")
DATA = ROOT / "examples" / "data" / "cnc_tool_wear.csv"
EPOCHS = 16
BATCH_SIZE = 16
HIDDEN = 512
COPIES = 4   # the 2,000 rows, four times over, so that an epoch lasts about a second here
SEED = 0
THREADS = 1


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    frame = pd.read_csv(DATA)
    frame = frame.fillna(frame.median(numeric_only=True))
    x = frame.iloc[:, :-1].to_numpy(np.float32)
    y = frame.iloc[:, -1].to_numpy(np.float32)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x, y = np.tile(x, (COPIES, 1)), np.tile(y, COPIES)
    return torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1)


def main() -> None:
    # One thread: on a small shared VM, OpenMP worker threads spin while they wait for a core, and
    # that spinning would be counted as this run's CPU time (and so its estimated energy).
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    x, y = load_data()
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 1),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    source = make_energy_source("cpu")
    load_before = os.getloadavg()

    times_s, counter_mj, losses = [], [], []
    start_s = time.perf_counter()
    times_s.append(0.0)
    counter_mj.append(source.read_energy_mj())
    for _ in range(EPOCHS):
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), BATCH_SIZE):
            batch = order[i:i + BATCH_SIZE]
            optimiser.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        counter_mj.append(source.read_energy_mj())
        times_s.append(time.perf_counter() - start_s)
        losses.append(total / len(x))

    recording = {
        "what": "raw cumulative energy counter (mJ) and monotonic time (s, from the first reading) before "
                "the first epoch and after each epoch of a real CPU training run",
        "command": "python tests/data/record_training_run.py",
        "recorded_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": platform.processor() or platform.machine(),
        "logical_cores": psutil.cpu_count(logical=True),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        # Other processes' load changes this run's epoch energies (shared cores and caches): the
        # forecast assumes a steady machine, so the recording says how busy this one was.
        "load_average_1_5_15_min_before": list(load_before),
        "load_average_1_5_15_min_after": list(os.getloadavg()),
        "workload": f"MLP {x.shape[1]}-{HIDDEN}-{HIDDEN}-1, Adam lr 1e-3, batch {BATCH_SIZE}, "
                    f"{len(x)} rows ({COPIES} copies of {DATA.relative_to(ROOT)}), seed {SEED}",
        "device": source.device,
        "method": source.method,
        "assumptions": source.assumptions,
        "note": ("this machine has no readable RAPL counter, so the energy is the hardware node's declared "
                 "CPU estimate (method 'estimate'), not a measurement; its readings are still real: "
                 "they follow this process's measured CPU time") if source.method == "estimate" else "",
        "counter_resolution_s": source.counter_resolution_s,
        "relative_uncertainty": source.relative_uncertainty,
        "epochs": EPOCHS,
        "times_s": times_s,
        "counter_mj": counter_mj,
        "train_loss": losses,
    }
    OUT.write_text(json.dumps(recording, indent=1) + "\n")
    per_epoch_j = np.diff(counter_mj) / 1000
    print(f"wrote {OUT.relative_to(ROOT)}: {EPOCHS} epochs, {times_s[-1]:.1f} s, {sum(per_epoch_j):.2f} J "
          f"({source.method}); per epoch {per_epoch_j.min():.3f} to {per_epoch_j.max():.3f} J")


if __name__ == "__main__":
    main()

"""``sustainml encode TEXT``: run the task encoder in this process, on free text or a problem file.

No pipeline needed: the same encoding the task encoder node makes (``encoding.py``), with the dataset
profiled by the library's rules (``sustainml.datasets``), printed as the encoded task or as JSON.

This module is imported by ``sustainml --help`` (``sustainml.cli`` finds it by name): it imports the
encoder, which loads a sentence model, only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

__all__ = ["add_parser", "cmd_encode"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``encode`` on the ``sustainml`` command's subparsers; returns its parser."""
    p = subparsers.add_parser("encode", help="run the task encoder alone on a description and print the encoded task")
    p.add_argument("text", nargs="?", default="", help='the goal in your words, e.g. "detect defects in photos of welds"')
    p.add_argument("--problem", help="encode a problem file instead of TEXT")
    p.add_argument("--task-type", default="", help="task type hint (skips inferring it)")
    p.add_argument("--region", default="", help="train region, e.g. DEU or gcp:europe-west3")
    p.add_argument("--dataset", default="", help="CSV, Parquet or image folder to profile, under --data-dir")
    p.add_argument("--target-column", default="", help="column to predict (default: the last one)")
    p.add_argument("--data-dir", default=os.environ.get("SUSTAINML_DATA_DIR", "."),
                   help="the only folder datasets may be read from (default: SUSTAINML_DATA_DIR or .)")
    p.add_argument("--max-dataset-mb", type=float, default=0.0,
                   help="largest dataset to profile, MiB (default: the task encoder's, 512)")
    p.add_argument("--json", action="store_true", help="print the encoded task as JSON")
    p.set_defaults(func=cmd_encode)
    return p


def cmd_encode(args: argparse.Namespace) -> int:
    """Run the task encoder in this process, on free text or a problem file: no pipeline needed."""
    from rich.console import Console

    from sustainml import msg
    from sustainml.datasets import DEFAULT_MAX_DATASET_MB, DataPolicy, profile_dataset
    from sustainml.exceptions import InvalidProblem
    from sustainml.problem import load_problem
    from sustainml.report import encoded_to_dict, print_encoded

    from .encoding import encode

    if bool(args.text) == bool(args.problem):
        raise InvalidProblem("give the goal as TEXT or a problem file with --problem, not both or neither")
    problem = load_problem(args.problem) if args.problem else msg.UserInput(text=args.text)
    for field, value in (("task_type_hint", args.task_type), ("train_region", args.region)):
        if value:
            setattr(problem, field, value)
    if args.dataset:
        problem.dataset.path = args.dataset
    if args.target_column:
        problem.dataset.target_column = args.target_column
    profile = None
    if problem.dataset.path:
        policy = DataPolicy.from_params(args.data_dir, args.max_dataset_mb or DEFAULT_MAX_DATASET_MB)
        profile = profile_dataset(problem.dataset.path, policy=policy, target_column=problem.dataset.target_column)
    task = encode(problem, profile=profile)
    if args.json:
        print(json.dumps(encoded_to_dict(task), indent=2))
    else:
        print_encoded(task, Console())
    return 0

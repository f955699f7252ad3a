"""Command line: `python -m mcjepa train|eval|data ...` (run `python -m mcjepa -h`)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from .config import apply_overrides, preset
from .data.manifests import main as data_main
from .data.registry import flow_eval_dataset
from .eval.flow_metrics import evaluate_flow_dataset
from .eval.runners import flow_fn
from .models.checkpoint import load_model
from .train.distributed import is_main, leave_process_group
from .train.trainer import TrainingDiverged, train


def _train(args: argparse.Namespace) -> int:
    cfg = preset(args.preset)
    cfg.train.method = args.method
    apply_overrides(cfg, args.set or [])
    try:
        result = train(cfg, args.out, resume=args.resume, progress=not args.no_progress, eval_every=args.eval_every)
        main_process = is_main()
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    finally:
        leave_process_group()
    if not main_process:  # under torchrun rank 0 reports the run
        return 0
    print(json.dumps({"out_dir": str(result.out_dir), "steps": result.steps, "seconds": round(result.seconds, 1),
                      "checkpoint": str(result.checkpoint), "last": result.last}, indent=1))
    return 0


def _eval_flow(args: argparse.Namespace) -> int:
    model, cfg = load_model(args.checkpoint)
    dataset = flow_eval_dataset(args.dataset, args.root, cfg)
    result = evaluate_flow_dataset(flow_fn(model), dataset, stride=model.stride, scale=args.scale,
                                   max_samples=args.max_samples)
    print(json.dumps(result, indent=1))
    return 0


def _number(kind, low, text: str, strict: bool = False):
    """argparse type: `kind(text)`, finite and >= low (> low when strict), else a message naming the range."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < low or (strict and value == low):
        raise argparse.ArgumentTypeError(f"must be a finite {kind.__name__} {'>' if strict else '>='} {low}, "
                                         f"got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _number(float, 0.0, text, strict=True)


def _positive_int(text: str) -> int:
    return _number(int, 1, text)


def _non_negative_int(text: str) -> int:
    return _number(int, 0, text)


def _message(err: BaseException) -> str:
    """One line naming what failed: KeyError's key, OSError's file and reason, else the message."""
    if isinstance(err, KeyError):
        return f"missing key {err.args[0]!r}" if err.args and " " not in str(err.args[0]) else str(err.args[0])
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return str(err) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:
        return data_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m mcjepa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("data", help="datasets: `data verify NAME ROOT`, `data list` (see `data -h`)")

    train_cmd = sub.add_parser("train", help="train M-JEPA, VICReg or MC-JEPA")
    train_cmd.add_argument("--preset", default="tiny", help="tiny | paper")
    train_cmd.add_argument("--method", default="mc-jepa", choices=["m-jepa", "vicreg", "mc-jepa"])
    train_cmd.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config field by its dotted name, e.g. loss.cycle=0.2 (repeatable)")
    train_cmd.add_argument("--out", required=True, help="run folder (config.json, metrics.jsonl, checkpoint.pt)")
    train_cmd.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train_cmd.add_argument(
        "--eval-every", type=_non_negative_int, default=0, help="log held-out flow EPE every N steps (0: off)"
    )
    train_cmd.add_argument("--no-progress", action="store_true")
    train_cmd.set_defaults(func=_train)

    evaluate = sub.add_parser("eval-flow", help="flow EPE/Fl of a checkpoint on a flow dataset")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--dataset", default="embedded")
    evaluate.add_argument("--root", default=None)
    evaluate.add_argument("--scale", type=_positive_float, default=1.0, help="image scale factor (finite, > 0)")
    evaluate.add_argument("--max-samples", type=_positive_int, default=None, help="evaluate at most N samples (>= 1)")
    evaluate.set_defaults(func=_eval_flow)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, OSError, RuntimeError) as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

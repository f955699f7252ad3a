"""Command line: `python -m mcjepa train|eval-flow|flow|data ...` (run `python -m mcjepa -h`)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from .config import METHODS, apply_overrides, for_method, preset
from .data.manifests import main as data_main
from .data.registry import flow_eval_dataset
from .eval.flow_metrics import evaluate_flow_dataset
from .eval.runners import flow_fn
from .experiments import on_videos
from .flow_video import flow_on_frames, parse_resize
from .models.checkpoint import load_model
from .train.distributed import is_main, leave_process_group
from .train.trainer import TrainingDiverged, train


def _train(args: argparse.Namespace) -> int:
    cfg = for_method(preset(args.preset), args.method)
    if args.video and args.eval_every:
        raise ValueError("--eval-every logs the flow EPE on held-out pairs with ground truth, which a video has "
                         "not: leave it out (notebook 15 measures held-out photometric errors instead)")
    if args.video or args.init:
        on_videos(cfg, args.video or (), args.init)
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


def _flow(args: argparse.Namespace) -> int:
    summary = flow_on_frames(args.run, args.input, args.out, device=args.device, max_frames=args.max_frames,
                             resize=parse_resize(args.resize), max_flow=args.max_flow, fps=args.fps,
                             progress=not args.no_progress)
    print(json.dumps(summary, indent=1))
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
    train_cmd.add_argument("--method", default="mc-jepa", choices=list(METHODS))
    train_cmd.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config field by its dotted name, e.g. loss.cycle=0.2 (repeatable)")
    train_cmd.add_argument("--out", required=True, help="run folder (config.json, metrics.jsonl, checkpoint.pt)")
    train_cmd.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train_cmd.add_argument(
        "--eval-every", type=_non_negative_int, default=0, help="log held-out flow EPE every N steps (0: off)"
    )
    train_cmd.add_argument("--video", action="append", metavar="PATH",
                           help="train on your own video file or folder of frames (repeatable): its consecutive "
                                "pairs become the flow data (data.flow_datasets = video:NAME)")
    train_cmd.add_argument("--init", metavar="RUN", default=None,
                           help="start from the encoder and flow head of this run folder or checkpoint "
                                "(fine-tuning; its model config is used)")
    train_cmd.add_argument("--no-progress", action="store_true")
    train_cmd.set_defaults(func=_train)

    flow_cmd = sub.add_parser("flow", help="flow of a run on your own video, folder of frames or image pair")
    flow_cmd.add_argument("run", help="a run folder (holding checkpoint.pt) or a checkpoint file")
    flow_cmd.add_argument("input", nargs="+", help="a video file, a folder of frames, or two or more images")
    flow_cmd.add_argument("--out", required=True, help="output folder: flow/*.flo, flow.mp4, side_by_side.mp4")
    flow_cmd.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    flow_cmd.add_argument("--max-frames", type=_positive_int, default=None, help="use at most N frames (>= 2)")
    flow_cmd.add_argument("--resize", default=None, metavar="HxW|FACTOR",
                          help="resize every frame first: HxW in pixels (96x128) or a scale factor (0.5)")
    flow_cmd.add_argument("--max-flow", type=_positive_float, default=None,
                          help="colour scale in pixels (default: the largest 99th-percentile flow length)")
    flow_cmd.add_argument("--fps", type=_positive_float, default=None, help="frame rate of the videos (default: "
                          "the input's, 10 for images)")
    flow_cmd.add_argument("--no-progress", action="store_true")
    flow_cmd.set_defaults(func=_flow)

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

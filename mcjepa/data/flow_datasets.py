"""Optical-flow datasets in their official on-disk layouts (RAFT-style: subclasses only list file tuples).

`FlowPairDataset` does all reading and dict building; each subclass fills `self.samples` with `PairFiles`.
Sample dict (conventions): {"frame1": (3,H,W) float [0,1], "frame2": (3,H,W), "flow": (2,H,W) float32
[if GT], "valid": (H,W) bool [if GT], "occlusion": (H,W) bool [if known], "name": str}.

Layouts (root = the folder named in each class docstring):
- FlyingChairs_release/: data/%05d_img1.ppm, %05d_img2.ppm, %05d_flow.flo; FlyingChairs_train_val.txt.
- FlyingThings3D/: frames_{cleanpass,finalpass}/{TRAIN,TEST}/{A,B,C}/%04d/{left,right}/%04d.png,
  optical_flow/{TRAIN,TEST}/{A,B,C}/%04d/{into_future,into_past}/{left,right}/
  OpticalFlowInto{Future,Past}_%04d_{L,R}.pfm (frame numbers 0006..0015 in the full release).
- MPI-Sintel-complete/: {training,test}/{clean,final}/<scene>/frame_%04d.png, training/flow/<scene>/
  frame_%04d.flo (frame i -> i+1), training/occlusions/<scene>/frame_%04d.png, training/invalid/...
- KITTI 2015 (data_scene_flow/): {training,testing}/image_2/%06d_{10,11}.png, training/flow_{occ,noc}/%06d_10.png.
- KITTI 2012 (data_stereo_flow/): same with colored_0 instead of image_2.
- KITTI multiview (data_scene_flow_multiview/ or data_stereo_flow_multiview/): .../image_2/%06d_%02d.png, 00..20.
- KITTI raw: <date>/<date>_drive_%04d_sync/image_02/data/%010d.png.
- HD1K: hd1k_input/image_2/%06d_%04d.png, hd1k_flow_gt/flow_occ/%06d_%04d.png (KITTI PNG encoding).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from mcjepa.data.formats import read_flow_any, read_image, read_label_png


@dataclass(frozen=True)
class PairFiles:
    """Files of one frame pair; `flow`/`occlusion`/`invalid` are None when the dataset has none."""

    frame1: Path
    frame2: Path
    name: str
    flow: Path | None = None
    occlusion: Path | None = None
    invalid: Path | None = None


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return rearrange(torch.from_numpy(np.ascontiguousarray(image)), "h w c -> c h w").float() / 255.0


class FlowPairDataset(Dataset):
    """Base: reads the files listed in `self.samples` (list of PairFiles) and builds the sample dict."""

    samples: list[PairFiles]

    def __init__(self, root, samples: list[PairFiles], what: str):
        self.root = Path(root)
        if not samples:
            raise FileNotFoundError(f"{self.root}: no {what} found (expected layout: see {type(self).__name__} docs)")
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        files = self.samples[index]
        image1, image2 = read_image(files.frame1), read_image(files.frame2)
        if image1.shape != image2.shape:
            raise ValueError(f"{files.frame1} {image1.shape} and {files.frame2} {image2.shape} differ in size")
        sample = {"frame1": image_to_tensor(image1), "frame2": image_to_tensor(image2), "name": files.name}
        if files.flow is not None:
            flow, valid = read_flow_any(files.flow)
            if flow.shape[:2] != image1.shape[:2]:
                raise ValueError(f"{files.flow}: flow size {flow.shape[:2]} != image size {image1.shape[:2]}")
            if files.invalid is not None:
                valid = valid & (read_label_png(files.invalid) == 0)
            sample["flow"] = rearrange(torch.from_numpy(flow), "h w c -> c h w").contiguous()
            sample["valid"] = torch.from_numpy(valid)
        if files.occlusion is not None:
            sample["occlusion"] = torch.from_numpy(read_label_png(files.occlusion) > 127)
        return sample


def _frame_number(path: Path) -> int:
    match = re.search(r"(\d+)(?=\D*$)", path.stem)
    if match is None:
        raise ValueError(f"{path}: no frame number in the file name")
    return int(match.group(1))


class FlyingChairs(FlowPairDataset):
    """FlyingChairs (root = FlyingChairs_release). split: "train" (label 1), "val" (label 2) or "all".

    The split file `FlyingChairs_train_val.txt` (one label per pair, in pair order) ships separately from the
    data archive (RAFT keeps it as chairs_split.txt); `split_file` overrides its location.
    """

    def __init__(self, root, split: str = "train", split_file=None):
        root = Path(root)
        if split not in ("train", "val", "all"):
            raise ValueError(f"FlyingChairs split must be 'train', 'val' or 'all', got {split!r}")
        firsts = sorted((root / "data").glob("*_img1.ppm"))
        samples = []
        for first in firsts:
            stem = first.name[: -len("_img1.ppm")]
            samples.append(
                PairFiles(first, first.with_name(f"{stem}_img2.ppm"), stem, flow=first.with_name(f"{stem}_flow.flo"))
            )
        if split != "all" and samples:
            split_file = Path(split_file) if split_file else root / "FlyingChairs_train_val.txt"
            if not split_file.is_file():
                raise FileNotFoundError(
                    f"{split_file}: FlyingChairs split file not found; it is needed for split={split!r} "
                    "(download FlyingChairs_train_val.txt from the dataset page, or pass split='all')")
            labels = np.loadtxt(split_file, dtype=np.int64, ndmin=1)
            if len(labels) != len(samples):
                raise ValueError(
                    f"{split_file}: {len(labels)} labels for {len(samples)} image pairs in {root / 'data'}"
                )
            wanted = 1 if split == "train" else 2
            samples = [s for s, label in zip(samples, labels) if label == wanted]
        super().__init__(root, samples, f"FlyingChairs pairs data/*_img1.ppm (split {split})")


class FlyingThings3D(FlowPairDataset):
    """FlyingThings3D full release (root holds frames_cleanpass/, frames_finalpass/, optical_flow/).

    Forward pair: (frame n, frame n+1, into_future flow of n). Backward pair: (frame n+1, frame n, into_past
    flow of n+1) - RAFT's pairing. Flow files: OpticalFlowIntoFuture_%04d_L.pfm / OpticalFlowIntoPast_%04d_L.pfm.
    """

    def __init__(
        self, root, split: str = "TRAIN", pass_: str = "clean", direction: str = "forward", camera: str = "left"
    ):
        root = Path(root)
        if split not in ("TRAIN", "TEST") or pass_ not in ("clean", "final") or camera not in ("left", "right"):
            raise ValueError(f"FlyingThings3D: bad split/pass_/camera {split!r}/{pass_!r}/{camera!r}")
        directions = {"forward": ["into_future"], "backward": ["into_past"], "both": ["into_future", "into_past"]}
        if direction not in directions:
            raise ValueError(f"FlyingThings3D direction must be forward/backward/both, got {direction!r}")
        cam = camera[0].upper()
        frames_root = root / f"frames_{pass_}pass" / split
        samples = []
        for sequence_dir in sorted(frames_root.glob("*/*")):
            letter, sequence = sequence_dir.parent.name, sequence_dir.name
            frames = {_frame_number(p): p for p in (sequence_dir / camera).glob("*.png")}
            for flow_dir_name in directions[direction]:
                flow_dir = root / "optical_flow" / split / letter / sequence / flow_dir_name / camera
                word = "Future" if flow_dir_name == "into_future" else "Past"
                for number in sorted(frames):
                    if number + 1 not in frames:
                        continue
                    if flow_dir_name == "into_future":
                        source, target = number, number + 1
                    else:
                        source, target = number + 1, number
                    flow = flow_dir / f"OpticalFlowInto{word}_{source:04d}_{cam}.pfm"
                    name = f"{split}/{letter}/{sequence}/{camera}/{source:04d}_{flow_dir_name}"
                    samples.append(PairFiles(frames[source], frames[target], name, flow=flow))
        super().__init__(root, samples, f"frame pairs under {frames_root}/*/*/{camera}")


class Sintel(FlowPairDataset):
    """MPI-Sintel (root = MPI-Sintel-complete). Consecutive frames per scene; training has flow (.flo),
    occlusions (-> "occlusion") and invalid masks; test has no "flow" key.

    `valid` = finite flow everywhere by default (Sintel EPE is over all pixels); `use_invalid_mask=True` also
    removes the pixels marked in training/invalid/. `scenes` restricts to a list of scene names.
    """

    def __init__(self, root, split: str = "training", pass_: str = "clean", scenes: Sequence[str] | None = None,
                 use_invalid_mask: bool = False):
        root = Path(root)
        if split not in ("training", "test") or pass_ not in ("clean", "final"):
            raise ValueError(f"Sintel: bad split/pass_ {split!r}/{pass_!r}")
        image_root = root / split / pass_
        samples = []
        for scene_dir in sorted(p for p in image_root.glob("*") if p.is_dir()):
            scene = scene_dir.name
            if scenes is not None and scene not in scenes:
                continue
            frames = sorted(scene_dir.glob("frame_*.png"))
            for first, second in zip(frames[:-1], frames[1:]):
                extra = {}
                if split == "training":
                    extra = dict(flow=root / split / "flow" / scene / f"{first.stem}.flo")
                    occlusion = root / split / "occlusions" / scene / first.name
                    extra["occlusion"] = occlusion if occlusion.is_file() else None
                    invalid = root / split / "invalid" / scene / first.name
                    extra["invalid"] = invalid if use_invalid_mask else None
                samples.append(PairFiles(first, second, f"{scene}/{first.stem}", **extra))
        super().__init__(root, samples, f"frame pairs in {image_root}/<scene>/frame_*.png")


class _KITTIFlow(FlowPairDataset):
    image_dir = "image_2"

    def __init__(self, root, split: str = "training", occ: str = "occ"):
        root = Path(root)
        if split not in ("training", "testing") or occ not in ("occ", "noc"):
            raise ValueError(f"{type(self).__name__}: bad split/occ {split!r}/{occ!r}")
        samples = []
        for first in sorted((root / split / self.image_dir).glob("*_10.png")):
            stem = first.name[: -len("_10.png")]
            flow = root / split / f"flow_{occ}" / first.name if split == "training" else None
            samples.append(PairFiles(first, first.with_name(f"{stem}_11.png"), stem, flow=flow))
        super().__init__(root, samples, f"pairs {split}/{self.image_dir}/*_10.png")


class KITTI2015(_KITTIFlow):
    """KITTI 2015 scene flow (root = data_scene_flow): pairs %06d_10/_11, flow_occ (all) or flow_noc GT."""

    image_dir = "image_2"


class KITTI2012(_KITTIFlow):
    """KITTI 2012 stereo/flow (root = data_stereo_flow): colored_0 pairs, flow_occ / flow_noc GT."""

    image_dir = "colored_0"


class KITTIMultiview(FlowPairDataset):
    """KITTI 2012/2015 multi-view extension, consecutive pairs without GT for unsupervised training.

    root = data_scene_flow_multiview (image_dir="image_2", 2015) or data_stereo_flow_multiview
    (image_dir="colored_0", 2012); frames %06d_%02d.png with 00..20 per scene. As ARFlow's KITTIFlowMV, every
    pair touching frames 9..12 is skipped so that the evaluated pair (10, 11) and its neighbours never
    appear in training. `splits` lists the subsets to use (both by default: unsupervised training may use
    the test scenes' extra frames, as ARFlow does).
    """

    def __init__(self, root, splits: Sequence[str] = ("training", "testing"), image_dir: str = "image_2",
                 skip_frames: tuple[int, int] = (9, 12)):
        root = Path(root)
        samples = []
        for split in splits:
            by_scene: dict[str, dict[int, Path]] = {}
            for path in (root / split / image_dir).glob("*_*.png"):
                scene, number = path.stem.rsplit("_", 1)
                by_scene.setdefault(scene, {})[int(number)] = path
            for scene in sorted(by_scene):
                frames = by_scene[scene]
                for number in sorted(frames):
                    pair = (number, number + 1)
                    if number + 1 not in frames or any(skip_frames[0] <= n <= skip_frames[1] for n in pair):
                        continue
                    samples.append(PairFiles(frames[number], frames[number + 1], f"{split}/{scene}_{number:02d}"))
        super().__init__(root, samples, f"multiview frames {list(splits)}/{image_dir}/*_*.png")


class KITTIRaw(FlowPairDataset):
    """KITTI raw recordings (root holds <date>/<date>_drive_%04d_sync/<camera>/data/%010d.png).

    Consecutive pairs within each drive, no GT. `dates` restricts to e.g. ["2011_09_26"].
    """

    def __init__(self, root, dates: Sequence[str] | None = None, camera: str = "image_02"):
        root = Path(root)
        samples = []
        for drive in sorted(root.glob("*/*_drive_*_sync")):
            if dates is not None and drive.parent.name not in dates:
                continue
            frames = {int(p.stem): p for p in (drive / camera / "data").glob("*.png")}
            for number in sorted(frames):
                if number + 1 in frames:
                    samples.append(
                        PairFiles(frames[number], frames[number + 1], f"{drive.name}/{camera}/{number:010d}")
                    )
        super().__init__(root, samples, f"frames <date>/<drive>_sync/{camera}/data/*.png")


class HD1K(FlowPairDataset):
    """HD1K (root holds hd1k_input/ and hd1k_flow_gt/): consecutive frames of a sequence (%06d_%04d.png).

    With `require_flow=True` (default) only pairs whose first frame has hd1k_flow_gt/flow_occ/<same name> are
    kept (RAFT's list); `require_flow=False` gives every consecutive pair without any "flow" key.
    """

    def __init__(self, root, require_flow: bool = True):
        root = Path(root)
        by_sequence: dict[str, dict[int, Path]] = {}
        for path in (root / "hd1k_input" / "image_2").glob("*_*.png"):
            sequence, number = path.stem.split("_", 1)
            by_sequence.setdefault(sequence, {})[int(number)] = path
        samples = []
        for sequence in sorted(by_sequence):
            frames = by_sequence[sequence]
            for number in sorted(frames):
                if number + 1 not in frames:
                    continue
                flow = root / "hd1k_flow_gt" / "flow_occ" / frames[number].name
                if require_flow and not flow.is_file():
                    continue
                samples.append(PairFiles(frames[number], frames[number + 1], frames[number].stem,
                                         flow=flow if require_flow else None))
        super().__init__(
            root, samples, "pairs hd1k_input/image_2/*_*.png" + (" with flow_occ GT" if require_flow else "")
        )

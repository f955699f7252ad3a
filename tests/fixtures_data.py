"""Tiny fixture trees in each dataset's official on-disk layout (2-4 samples, 24x32 images).

Each `make_*` writes into `root` and returns the ground truth it wrote (dicts keyed by sample name), so
tests can compare what the loaders read back against what was written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mcjepa.data.formats import (
    write_flo, write_image, write_kitti_flow_png, write_label_png, write_palette_png, write_pfm,
)

H, W = 24, 32


def rng_for(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_image(rng, height=H, width=W) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def random_flow(rng, height=H, width=W) -> np.ndarray:
    return rng.normal(0, 4, (height, width, 2)).astype(np.float32)


def kitti_flow(rng, height=H, width=W):
    """Flow on the KITTI 1/64 px grid and a random valid mask (exactly representable)."""
    flow = (rng.integers(-640, 640, (height, width, 2)) / 64.0).astype(np.float32)
    valid = rng.random((height, width)) > 0.3
    return np.where(valid[..., None], flow, 0).astype(np.float32), valid


def make_flyingchairs(root: Path, labels=(1, 2, 1), split_file=True, seed=0) -> dict:
    rng, truth = rng_for(seed), {}
    for i, _ in enumerate(labels, start=1):
        stem = f"{i:05d}"
        images = [random_image(rng), random_image(rng)]
        flow = random_flow(rng)
        write_image(root / "data" / f"{stem}_img1.ppm", images[0])
        write_image(root / "data" / f"{stem}_img2.ppm", images[1])
        write_flo(root / "data" / f"{stem}_flow.flo", flow)
        truth[stem] = dict(images=images, flow=flow)
    if split_file:
        (root / "FlyingChairs_train_val.txt").write_text("".join(f"{label}\n" for label in labels))
    return truth


def make_flyingthings(root: Path, split="TRAIN", frames=(6, 7, 8), seed=0) -> dict:
    """One sequence A/0000, left camera, clean pass; 3-channel PFM flows (third channel 0, as released)."""
    rng, truth = rng_for(seed), {"frames": {}, "future": {}, "past": {}}
    sequence = root / "frames_cleanpass" / split / "A" / "0000" / "left"
    flows = root / "optical_flow" / split / "A" / "0000"
    for n in frames:
        truth["frames"][n] = random_image(rng)
        write_image(sequence / f"{n:04d}.png", truth["frames"][n])
        for word, key in (("Future", "future"), ("Past", "past")):
            flow = random_flow(rng)
            truth[key][n] = flow
            pfm = np.concatenate([flow, np.zeros((H, W, 1), np.float32)], axis=-1)
            write_pfm(flows / f"into_{key}" / "left" / f"OpticalFlowInto{word}_{n:04d}_L.pfm", pfm)
    return truth


def make_sintel(root: Path, scenes=("alley_1", "market_2"), n_frames=3, seed=0) -> dict:
    rng, truth = rng_for(seed), {}
    for scene in scenes:
        for split in ("training", "test"):
            for f in range(1, n_frames + 1):
                image = random_image(rng)
                truth[(split, "clean", scene, f)] = image
                write_image(root / split / "clean" / scene / f"frame_{f:04d}.png", image)
                write_image(root / split / "final" / scene / f"frame_{f:04d}.png", random_image(rng))
        for f in range(1, n_frames):
            flow = random_flow(rng)
            occlusion = rng.random((H, W)) > 0.8
            invalid = rng.random((H, W)) > 0.9
            truth[(scene, f)] = dict(flow=flow, occlusion=occlusion, invalid=invalid)
            write_flo(root / "training" / "flow" / scene / f"frame_{f:04d}.flo", flow)
            write_label_png(root / "training" / "occlusions" / scene / f"frame_{f:04d}.png", occlusion * 255)
            write_label_png(root / "training" / "invalid" / scene / f"frame_{f:04d}.png", invalid * 255)
    return truth


def make_kitti(root: Path, image_dir="image_2", n=2, seed=0) -> dict:
    rng, truth = rng_for(seed), {}
    for i in range(n):
        stem = f"{i:06d}"
        for split in ("training", "testing"):
            for frame in ("10", "11"):
                write_image(root / split / image_dir / f"{stem}_{frame}.png", random_image(rng))
        occ, valid_occ = kitti_flow(rng)
        valid_noc = valid_occ & (rng.random((H, W)) > 0.2)
        noc = np.where(valid_noc[..., None], occ, 0).astype(np.float32)
        write_kitti_flow_png(root / "training" / "flow_occ" / f"{stem}_10.png", occ, valid_occ)
        write_kitti_flow_png(root / "training" / "flow_noc" / f"{stem}_10.png", noc, valid_noc)
        truth[stem] = dict(occ=(occ, valid_occ), noc=(noc, valid_noc))
    return truth


def make_kitti_multiview(root: Path, image_dir="image_2", scenes=2, frames=range(0, 21), seed=0) -> None:
    rng = rng_for(seed)
    image = random_image(rng, 8, 8)
    for split in ("training", "testing"):
        for s in range(scenes):
            for f in frames:
                write_image(root / split / image_dir / f"{s:06d}_{f:02d}.png", image)


def make_kitti_raw(root: Path, seed=0) -> dict:
    rng = rng_for(seed)
    drives = {("2011_09_26", 1): 3, ("2011_09_26", 2): 2, ("2011_09_28", 1): 2}
    for (date, drive), n in drives.items():
        for f in range(n):
            write_image(root / date / f"{date}_drive_{drive:04d}_sync" / "image_02" / "data" / f"{f:010d}.png",
                        random_image(rng, 8, 8))
    return drives


def make_hd1k(root: Path, seed=0) -> dict:
    """Sequence 0: frames 0..2 with flow for 0, 1; sequence 1: frames 0..1, flow for 0."""
    rng, truth = rng_for(seed), {}
    for sequence, n in ((0, 3), (1, 2)):
        for f in range(n):
            name = f"{sequence:06d}_{f:04d}"
            write_image(root / "hd1k_input" / "image_2" / f"{name}.png", random_image(rng))
            if f < n - 1:
                truth[name] = kitti_flow(rng)
                write_kitti_flow_png(root / "hd1k_flow_gt" / "flow_occ" / f"{name}.png", *truth[name])
    return truth


# ------------------------------------------------------------------------------------------ content
def make_imagenet(root: Path, seed=0) -> dict:
    rng, truth = rng_for(seed), {}
    for split, per_class in (("train", 2), ("val", 1)):
        for wnid in ("n01440764", "n01443537"):
            for i in range(per_class):
                name = f"{wnid}_{split}_{i}"
                write_image(root / split / wnid / f"{name}.JPEG", random_image(rng, 16, 16))
                truth[(split, name)] = wnid
    return truth


def make_voc(root: Path, aug=True, seed=0) -> dict:
    """VOCdevkit/VOC2012 with train (2) / val (1) ids and, optionally, SegmentationClassAug + train_aug.txt."""
    rng, truth = rng_for(seed), {}
    base = root / "VOC2012"
    ids = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"], "train_aug": ["2008_000001"]}
    for split, names in ids.items():
        for name in names:
            write_image(base / "JPEGImages" / f"{name}.jpg", random_image(rng))
            label = rng.integers(0, 21, (H, W))
            label[:2] = 255
            truth[name] = label
            if split == "train_aug":
                if aug:
                    write_label_png(base / "SegmentationClassAug" / f"{name}.png", label)
            else:
                write_palette_png(base / "SegmentationClass" / f"{name}.png", label)
        if split != "train_aug" or aug:
            (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
            (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return truth


def make_cityscapes(root: Path, train_ids=True, seed=0) -> dict:
    """Two train images (city aachen) with labelIds (and labelTrainIds if `train_ids`); one val image."""
    rng, truth = rng_for(seed), {}
    for split, city, stems in (("train", "aachen", ["aachen_000000_000019", "aachen_000001_000019"]),
                               ("val", "lindau", ["lindau_000000_000019"])):
        for stem in stems:
            write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", random_image(rng))
            label_ids = rng.integers(0, 34, (H, W))
            truth[f"{city}/{stem}"] = label_ids
            gt = root / "gtFine" / split / city
            write_label_png(gt / f"{stem}_gtFine_labelIds.png", label_ids)
            if train_ids:
                table = {7: 0, 8: 1, 26: 13}  # a partial, independent encoding for the trainIds files
                write_label_png(gt / f"{stem}_gtFine_labelTrainIds.png",
                                np.vectorize(lambda v: table.get(int(v), 255))(label_ids))
    return truth


def make_ade20k(root: Path, seed=0) -> dict:
    rng, truth = rng_for(seed), {}
    base = root / "ADEChallengeData2016"
    for split, names in (
        ("training", ["ADE_train_00000001", "ADE_train_00000002"]),
        ("validation", ["ADE_val_00000001"]),
    ):
        for name in names:
            write_image(base / "images" / split / f"{name}.jpg", random_image(rng))
            raw = rng.integers(0, 151, (H, W))
            truth[name] = raw
            write_label_png(base / "annotations" / split / f"{name}.png", raw)
    return truth


def make_davis(root: Path, seed=0) -> dict:
    """Two val sequences of 3 frames, objects 1..2 (sequence 'dogs-jump' lacks its last annotation)."""
    rng, truth = rng_for(seed), {}
    for sequence in ("bike-packing", "dogs-jump"):
        masks = []
        for t in range(3):
            write_image(root / "JPEGImages" / "480p" / sequence / f"{t:05d}.jpg", random_image(rng))
            mask = rng.integers(0, 3, (H, W))
            masks.append(mask)
            if not (sequence == "dogs-jump" and t == 2):
                write_palette_png(root / "Annotations" / "480p" / sequence / f"{t:05d}.png", mask)
        truth[sequence] = masks
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("bike-packing\ndogs-jump\n")
    (root / "ImageSets" / "2017" / "train.txt").write_text("bike-packing\n")
    return truth

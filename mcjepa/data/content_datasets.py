"""Content datasets (ImageNet, Pascal VOC, Cityscapes, ADE20k, DAVIS 2017) in their official layouts.

Still images: {"image": (3,H,W) float [0,1], "label": (H,W) int64 (255 = ignore) | "target": int, "name"}.
DAVIS sequences: {"frames": (T,3,H,W), "masks": (T,H,W) int64 (0 = background, 255 = void / no GT), "name"}.
Each dataset exposes `num_classes`, `ignore_index = 255` and `class_names` where a standard list exists.
No resizing happens here: the evaluators pad/resize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mcjepa.data.flow_datasets import image_to_tensor
from mcjepa.data.formats import read_image, read_label_png

IGNORE_INDEX = 255

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

# Official cityscapesScripts `labels.py`: label id -> train id (ids not listed -> 255, incl. license plate -1).
CITYSCAPES_ID_TO_TRAINID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier",
    "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def cityscapes_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes label ids (H, W) to train ids (0..18, 255 = ignore) with the official table."""
    table = np.full(256, IGNORE_INDEX, np.int64)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAINID.items():
        table[label_id] = train_id
    if label_ids.min(initial=0) < 0 or label_ids.max(initial=0) > 255:
        raise ValueError("Cityscapes label ids must lie in [0, 255]")
    return table[label_ids]


def _read_split_list(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} split list not found")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: {what} split list is empty")
    return names


class _SegmentationDataset(Dataset):
    """Base: lists of (image path, label path or None, name); labels go through `self.convert_label`."""

    num_classes: int
    class_names: tuple[str, ...] = ()
    ignore_index = IGNORE_INDEX

    def __init__(self, root, items: list[tuple[Path, Path | None, str]], what: str):
        self.root = Path(root)
        if not items:
            raise FileNotFoundError(f"{self.root}: no {what} found")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def convert_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return raw

    def __getitem__(self, index: int) -> dict:
        image_path, label_path, name = self.items[index]
        image = read_image(image_path)
        sample = {"image": image_to_tensor(image), "name": name}
        if label_path is not None:
            label = self.convert_label(read_label_png(label_path), label_path)
            if label.shape != image.shape[:2]:
                raise ValueError(f"{label_path}: label size {label.shape} != image size {image.shape[:2]}")
            sample["label"] = torch.from_numpy(label.astype(np.int64))
        return sample


class ImageFolder(Dataset):
    """ImageNet-style classification: root/<split>/<wnid>/*.JPEG -> {"image", "target", "name"}.

    Only the class-folder layout is supported for both train and val (the official flat val folder must be
    sorted into class folders first, e.g. with the widely used `valprep.sh`); a flat folder gives an error.
    Classes are the sorted folder names of the *train* split when it exists, so val targets match train.
    """

    def __init__(self, root, split: str = "train"):
        self.root = Path(root)
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir}: ImageNet split folder not found")
        class_source = self.root / "train" if (self.root / "train").is_dir() else split_dir
        self.classes = sorted(p.name for p in class_source.iterdir() if p.is_dir())
        if not self.classes:
            flat = [p for p in split_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            hint = " (flat image folder: sort it into <wnid>/ class folders first)" if flat else ""
            raise FileNotFoundError(f"{split_dir}: no class folders{hint}")
        self.class_to_index = {wnid: i for i, wnid in enumerate(self.classes)}
        self.items = []
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if class_dir.name not in self.class_to_index:
                raise ValueError(f"{class_dir}: class folder absent from {class_source}")
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    self.items.append((path, self.class_to_index[class_dir.name]))
        if not self.items:
            raise FileNotFoundError(f"{split_dir}: no images in the class folders")
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, target = self.items[index]
        return {"image": image_to_tensor(read_image(path)), "target": target, "name": f"{path.parent.name}/{path.stem}"}


class PascalVOC(_SegmentationDataset):
    """Pascal VOC 2012 segmentation (root = VOCdevkit or VOCdevkit/VOC2012).

    split "train"/"val": ImageSets/Segmentation/<split>.txt, SegmentationClass/<id>.png (palette indices,
    255 = border/ignore). split "train_aug": SegmentationClassAug/<id>.png (SBD-augmented, greyscale) listed
    by ImageSets/Segmentation/train_aug.txt (or aug.txt, mmsegmentation's name).
    """

    num_classes = 21
    class_names = VOC_CLASSES

    def __init__(self, root, split: str = "train"):
        root = Path(root)
        base = root / "VOC2012" if (root / "VOC2012").is_dir() else root
        lists = base / "ImageSets" / "Segmentation"
        if split in ("train", "val", "trainval"):
            names, label_dir = _read_split_list(lists / f"{split}.txt", "VOC"), base / "SegmentationClass"
        elif split == "train_aug":
            candidates = [lists / "train_aug.txt", lists / "aug.txt"]
            found = [p for p in candidates if p.is_file()]
            if not found or not (base / "SegmentationClassAug").is_dir():
                raise FileNotFoundError(
                    f"{base}: split 'train_aug' needs SegmentationClassAug/ and one of "
                    f"{[str(p) for p in candidates]} (the SBD augmentation is a separate download)")
            names, label_dir = _read_split_list(found[0], "VOC train_aug"), base / "SegmentationClassAug"
        else:
            raise ValueError(f"PascalVOC split must be train/val/trainval/train_aug, got {split!r}")
        items = [(base / "JPEGImages" / f"{n}.jpg", label_dir / f"{n}.png", n) for n in names]
        super().__init__(root, items, f"VOC {split} images")


class Cityscapes(_SegmentationDataset):
    """Cityscapes fine annotations (root holds leftImg8bit/ and gtFine/), 19 train classes, 255 = ignore.

    Labels: gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png when present (created by cityscapesScripts'
    createTrainIdLabelImgs), otherwise <stem>_gtFine_labelIds.png mapped with the official id -> trainId table.
    The test split has no usable labels: samples have no "label" key.
    """

    num_classes = 19
    class_names = CITYSCAPES_CLASSES

    def __init__(self, root, split: str = "train"):
        root = Path(root)
        if split not in ("train", "val", "test"):
            raise ValueError(f"Cityscapes split must be train/val/test, got {split!r}")
        items = []
        self._needs_mapping: set[Path] = set()
        for image in sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            gt_dir = root / "gtFine" / split / image.parent.name
            train_ids, label_ids = gt_dir / f"{stem}_gtFine_labelTrainIds.png", gt_dir / f"{stem}_gtFine_labelIds.png"
            label = None
            if split != "test":
                if train_ids.is_file():
                    label = train_ids
                elif label_ids.is_file():
                    label = label_ids
                    self._needs_mapping.add(label_ids)
                else:
                    raise FileNotFoundError(f"{train_ids}: no Cityscapes label (neither labelTrainIds nor labelIds)")
            items.append((image, label, f"{image.parent.name}/{stem}"))
        super().__init__(root, items, f"images leftImg8bit/{split}/<city>/*_leftImg8bit.png")

    def convert_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        return cityscapes_ids_to_train_ids(raw) if path in self._needs_mapping else raw


class ADE20k(_SegmentationDataset):
    """ADE20k SceneParsing (root = ADEChallengeData2016 or its parent), 150 classes.

    Raw annotation 0 = "other" -> 255 (ignore), k in 1..150 -> k - 1 (mmsegmentation's reduce_zero_label).
    """

    num_classes = 150
    class_names = ADE20K_CLASSES

    def __init__(self, root, split: str = "training"):
        root = Path(root)
        base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
        if split not in ("training", "validation"):
            raise ValueError(f"ADE20k split must be training/validation, got {split!r}")
        items = [(image, base / "annotations" / split / f"{image.stem}.png", image.stem)
                 for image in sorted((base / "images" / split).glob("*.jpg"))]
        super().__init__(root, items, f"images images/{split}/*.jpg")

    def convert_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.max(initial=0) > 150:
            raise ValueError(f"{path}: ADE20k label {raw.max()} > 150")
        return np.where(raw == 0, IGNORE_INDEX, raw - 1)


class DAVIS2017(Dataset):
    """DAVIS 2017 semi-supervised (root = DAVIS): one sample per sequence.

    JPEGImages/<resolution>/<seq>/%05d.jpg, Annotations/<resolution>/<seq>/%05d.png (palette indices = object
    ids, 0 = background), ImageSets/2017/<split>.txt. Frames without an annotation file get masks of 255
    (void); the first frame's annotation is required.
    """

    ignore_index = IGNORE_INDEX

    def __init__(self, root, split: str = "val", resolution: str = "480p"):
        self.root = Path(root)
        self.resolution = resolution
        self.sequences = _read_split_list(self.root / "ImageSets" / "2017" / f"{split}.txt", "DAVIS 2017")
        for sequence in self.sequences:
            if not (self.root / "JPEGImages" / resolution / sequence).is_dir():
                raise FileNotFoundError(f"{self.root / 'JPEGImages' / resolution / sequence}: sequence folder missing")

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        sequence = self.sequences[index]
        frame_paths = sorted((self.root / "JPEGImages" / self.resolution / sequence).glob("*.jpg"))
        if not frame_paths:
            raise FileNotFoundError(f"{self.root / 'JPEGImages' / self.resolution / sequence}: no frames")
        frames = torch.stack([image_to_tensor(read_image(p)) for p in frame_paths])
        height, width = frames.shape[-2:]
        masks = torch.full((len(frame_paths), height, width), IGNORE_INDEX, dtype=torch.int64)
        annotation_dir = self.root / "Annotations" / self.resolution / sequence
        for t, frame_path in enumerate(frame_paths):
            mask_path = annotation_dir / f"{frame_path.stem}.png"
            if not mask_path.is_file():
                if t == 0:
                    raise FileNotFoundError(f"{mask_path}: first-frame annotation missing")
                continue
            mask = read_label_png(mask_path)
            if mask.shape != (height, width):
                raise ValueError(f"{mask_path}: mask size {mask.shape} != frame size {(height, width)}")
            masks[t] = torch.from_numpy(mask)
        return {"frames": frames, "masks": masks, "name": sequence}

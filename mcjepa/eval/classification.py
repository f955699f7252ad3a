"""Image-level classification of the embedded stills: a quick check of content features (notebook 02).

The target of a still is its majority object class (`knn.sample_target`). The classifiers (DINO's weighted
k-NN and a linear classifier, both on the pooled frozen features: `knn`) are fitted on generated stills of the
"val" split and scored on held-out ones of the "test" split (other scenes), beside the majority-class baseline
(always the most frequent test target: chance level).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import torch

from ..config import DataConfig
from ..data.registry import embedded_scene
from ..data.synthetic import CLASS_NAMES, SyntheticStills
from ..models.mcjepa import MCJEPA
from .knn import extract_pooled, knn_accuracy, linear_classifier_accuracy, sample_target
from .runners import pooled_fn

KNN, LINEAR, MAJORITY = "k-NN top-1", "linear top-1", "majority class"


def classification_stills(data: DataConfig, num_train: int, num_test: int) -> tuple[SyntheticStills, SyntheticStills]:
    """(train, test) generated stills of the embedded scene of `data`: `num_train` of split "val" and `num_test`
    of split "test" (other scenes), seeded by `data.seed`."""
    scene = embedded_scene(data)
    return (SyntheticStills(num_train, seed=data.seed, cfg=scene, split="val"),
            SyntheticStills(num_test, seed=data.seed, cfg=scene, split="test"))


def target_counts(stills) -> dict[str, int]:
    """{class name: number of stills whose target it is}, in class order."""
    counts = Counter(sample_target(stills[i]) for i in range(len(stills)))
    return {CLASS_NAMES[c]: n for c, n in sorted(counts.items())}


def majority_accuracy(stills) -> float:
    """Accuracy of always predicting the most frequent target of `stills` (fraction); ValueError if empty."""
    if not len(stills):
        raise ValueError("majority_accuracy: no stills")
    return max(target_counts(stills).values()) / len(stills)


def pooled_embeddings(models: Mapping[str, MCJEPA], stills) -> dict[str, dict[str, torch.Tensor]]:
    """{model name: {"pooled": (N, D) LayerNorm of the averaged last stage (what the probes read), "expanded":
    (N, D') the expander's output (what VICReg sees)}} over `stills`, models in eval mode."""
    out = {}
    for name, model in models.items():
        pooled, _ = extract_pooled(pooled_fn(model), stills, progress=False)
        with torch.no_grad():
            out[name] = {"pooled": pooled, "expanded": model.expander(pooled)}
    return out


def classification_scores(models: Mapping[str, MCJEPA], train, test, k: int = 20) -> dict[str, dict[str, float]]:
    """{model name: {KNN: top-1, LINEAR: top-1}} (fractions) of each model's pooled features fitted on `train`
    and scored on `test`, then the row MAJORITY (`majority_accuracy` of `test` in both columns)."""
    num_classes = len(CLASS_NAMES)
    scores = {}
    for name, model in models.items():
        knn = knn_accuracy(pooled_fn(model), train, test, num_classes, k=k, progress=False)
        linear = linear_classifier_accuracy(pooled_fn(model), train, test, num_classes, progress=False)
        scores[name] = {KNN: knn["top1"], LINEAR: linear["top1"]}
    majority = majority_accuracy(test)
    scores[MAJORITY] = {KNN: majority, LINEAR: majority}
    return scores

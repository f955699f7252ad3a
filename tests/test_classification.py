"""Image-level classification of the embedded stills (mcjepa/eval/classification.py, notebook 02)."""

import pytest
import torch

from mcjepa.config import tiny
from mcjepa.data.synthetic import CLASS_NAMES
from mcjepa.eval.classification import (KNN, LINEAR, MAJORITY, classification_scores, classification_stills,
                                        majority_accuracy, pooled_embeddings, target_counts)
from mcjepa.eval.knn import sample_target
from mcjepa.models.mcjepa import MCJEPA


@pytest.fixture(scope="module")
def stills():
    return classification_stills(tiny().data, 24, 16)


def test_targets_and_majority_against_a_loop(stills):
    train, test = stills
    assert (len(train), len(test)) == (24, 16)
    tally = {}
    for i in range(len(test)):
        name = CLASS_NAMES[sample_target(test[i])]
        tally[name] = tally.get(name, 0) + 1
    assert target_counts(test) == {n: tally[n] for n in CLASS_NAMES if n in tally}
    assert majority_accuracy(test) == max(tally.values()) / 16
    assert not torch.equal(train[0]["image"], test[0]["image"])  # other scenes
    with pytest.raises(ValueError, match="no stills"):
        majority_accuracy([])


def test_scores_and_embeddings_of_an_untrained_model(stills):
    train, test = stills
    torch.manual_seed(0)
    cfg = tiny().model
    cfg.expander = (16, 16, 16)
    models = {"untrained": MCJEPA(cfg).eval()}
    scores = classification_scores(models, train, test, k=5)
    assert list(scores) == ["untrained", MAJORITY]
    assert scores[MAJORITY] == {KNN: majority_accuracy(test), LINEAR: majority_accuracy(test)}
    assert all(0 <= v <= 1 for v in scores["untrained"].values())
    embeddings = pooled_embeddings(models, test)["untrained"]
    assert embeddings["pooled"].shape == (16, cfg.encoder.dims[-1]) and embeddings["expanded"].shape == (16, 16)

"""mcjepa.claims: Welch's test against a hand computation, the verdict rule on constructed cases, claim (iv),
the method-run evaluations (cached by config hash; nothing trained when train=False) and the claims table
from hand-written points and results."""

import json
import math

import pytest
from scipy import stats

from mcjepa import claims as claims_module
from mcjepa.ablations import EVAL_DATASETS, base_config
from mcjepa.claims import (RESULT_FORMAT, claims, claims_markdown, cycle_claim, method_result, result_path,
                           save_claims, verdict, welch)
from mcjepa.config import config_hash
from mcjepa.experiments import Setting, run_config, run_dir
from mcjepa.report import load_json
from tests.test_ablations import write_point


def test_welch_matches_a_hand_computation():
    a, b = [1.0, 2.0, 4.0], [3.0, 5.0, 6.0, 8.0]
    ma, mb = sum(a) / 3, sum(b) / 4
    va = sum((x - ma) ** 2 for x in a) / 2
    vb = sum((x - mb) ** 2 for x in b) / 3
    se2 = va / 3 + vb / 4
    t = (ma - mb) / math.sqrt(se2)
    df = se2 ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)  # Welch-Satterthwaite
    test = welch(a, b)
    assert test["t"] == pytest.approx(t)
    assert test["p_less"] == pytest.approx(stats.t.cdf(t, df)) and test["p_greater"] == pytest.approx(stats.t.sf(t, df))
    assert math.isnan(welch([1.0], b)["p_less"]) and math.isnan(welch([1.0, 1.0], [1.0, 1.0])["p_less"])
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    assert test["difference"] == pytest.approx(ma - mb)
    assert test["ci"] == pytest.approx((ma - mb - half, ma - mb + half))
    assert welch([1.0], b)["difference"] == pytest.approx(1.0 - mb) and math.isnan(welch([1.0], b)["ci"][0])


def test_effect_text_scales_and_signs_the_difference():
    from mcjepa.claims import effect_text

    row = {"difference": -0.0431, "ci": [-0.0712, -0.015], "factor": 100.0, "digits": 1}
    assert effect_text(row) == "-4.3 [-7.1, -1.5]"
    assert effect_text({**row, "ci": [math.nan, math.nan]}) == "-4.3"
    assert effect_text({"factor": 1.0, "digits": 2}) == "-"  # a row stored before the effect was recorded


@pytest.mark.parametrize("a, b, lower, kind, expected", [
    ([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], True, "better", "holds"),          # A clearly lower, lower is better
    ([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], False, "better", "contradicted"),  # A clearly lower, higher is better
    ([1.0, 1.5, 0.5], [1.1, 0.6, 1.6], True, "better", "not shown"),      # overlapping
    ([1.0, 1.5, 0.5], [1.1, 0.6, 1.6], True, "not worse", "holds (not worse)"),
    ([2.0, 2.1, 1.9], [1.0, 1.1, 0.9], True, "not worse", "contradicted"),
    ([1.0], [2.0, 2.1], True, "better", "no verdict (n = 1 and 2; 2 per group needed)"),
])
def test_verdict_rule(a, b, lower, kind, expected):
    result, p = verdict(a, b, lower, kind)
    assert result == expected
    if len(a) > 1:
        assert 0 <= p <= 1
    with pytest.raises(ValueError, match="kind"):
        verdict(a, b, lower, "maybe")


def test_cycle_claim_needs_an_interior_minimum_better_than_both_ends(tmp_path):
    def sweep(epes):
        return [write_point(tmp_path / str(epes), "cycle", v, e + d, 0.2, seed=s)
                for v, e in zip((0.0, 0.1, 1.0), epes) for s, d in enumerate((-0.05, 0.0, 0.05))]

    assert cycle_claim(sweep((2.0, 1.0, 2.0)))["verdict"] == "holds"
    assert cycle_claim(sweep((2.0, 1.99, 1.0)))["verdict"].startswith("not shown (lowest mean EPE at the end")
    assert cycle_claim(sweep((2.0, 1.98, 2.0)))["verdict"] == "not shown"
    assert cycle_claim(sweep((2.0, 1.0, 2.0))[:6])["verdict"] == "no verdict (2 values; 3 needed)"


class FakeEvaluation:
    def __init__(self, monkeypatch, finished=True):
        self.trained, self.calls = [], []
        monkeypatch.setattr(claims_module, "is_finished", lambda folder, cfg: finished or folder in self.trained)
        monkeypatch.setattr(claims_module, "ensure_run",
                            lambda cfg, **kw: self.trained.append(run_dir(cfg, kw["runs_dir"])))
        monkeypatch.setattr(claims_module, "evaluate_run", self.evaluate_run)

    def evaluate_run(self, folder, tasks, flow_dataset="embedded", **kwargs):
        self.calls.append((tuple(tasks), flow_dataset))
        out = {}
        if "flow" in tasks:
            out["flow"] = {"epe": {"embedded": 1.5, "motorcycle": 4.0}[flow_dataset], "fl": 10.0}
        if "segmentation" in tasks:
            out["segmentation"] = {"miou": 0.16}
        if "davis" in tasks:
            out["davis"] = {"JF_mean": 0.4}
        return out


def here(tmp_path, seed=0):
    """The tiny preset at `seed`, runs and results under tmp_path."""
    return Setting("tiny", seed=seed, runs_dir=tmp_path / "runs", figures_dir=tmp_path, progress=False)


def test_method_result_evaluates_once_and_reads_back(tmp_path, monkeypatch):
    fake = FakeEvaluation(monkeypatch)
    result = method_result("mc-jepa", here(tmp_path, 1))
    path = result_path("mc-jepa", 1, tmp_path)
    assert path == tmp_path / "claims" / "runs" / "mc-jepa_seed1.json" and load_json(path) == result
    assert result["config_hash"] == config_hash(run_config("tiny", "mc-jepa", {}, seed=1))
    assert (result["epe/embedded"], result["epe/motorcycle"], result["miou"], result["jf"]) == (1.5, 4.0, 0.16, 0.4)
    assert result["run_dir"] == f"mc-jepa-{result['config_hash']}"  # the run's name, not the machine's path
    assert fake.calls == [(("segmentation", "davis"), "embedded"), (("flow",), "embedded"), (("flow",), "motorcycle")]
    assert method_result("mc-jepa", here(tmp_path, 1)) == result
    assert len(fake.calls) == 3  # cached
    stale = dict(result, eval_datasets={**result["eval_datasets"], "flow": ["embedded"]})  # other datasets then
    path.write_text(json.dumps(stale))
    method_result("mc-jepa", here(tmp_path, 1))
    assert len(fake.calls) == 6  # evaluated again
    vicreg = method_result("vicreg", here(tmp_path))
    assert vicreg["flow"] == {} and "epe/embedded" not in vicreg
    with pytest.raises(ValueError, match="unknown method"):
        method_result("raft", here(tmp_path))


def test_an_altered_evaluation_is_measured_again(tmp_path, monkeypatch):
    fake = FakeEvaluation(monkeypatch)
    result = method_result("vicreg", here(tmp_path))
    path = result_path("vicreg", 0, tmp_path)
    path.write_text(path.read_text().replace('"jf": 0.4', '"jf": 0.9'))  # still JSON, checksum off
    with pytest.warns(UserWarning, match="vicreg_seed0.json was altered.*measuring it again"):
        again = method_result("vicreg", here(tmp_path))
    assert again["jf"] == result["jf"] == 0.4 and len(fake.calls) == 2 and load_json(path)["jf"] == 0.4


def test_missing_runs_are_not_trained_unless_asked(tmp_path, monkeypatch):
    fake = FakeEvaluation(monkeypatch, finished=False)
    assert method_result("m-jepa", here(tmp_path), train=False) is None
    assert fake.trained == [] and fake.calls == []
    assert method_result("m-jepa", here(tmp_path), train=True)["miou"] == 0.16
    assert len(fake.trained) == 1


def test_claims_table_from_stored_results_and_points(tmp_path, monkeypatch):
    FakeEvaluation(monkeypatch, finished=False)  # nothing can be evaluated: only stored results count
    for method, epes in (("mc-jepa", (1.50, 1.52, 1.48)), ("m-jepa", (1.40, 1.41, 1.39))):
        for seed, epe in enumerate(epes):
            cfg = run_config("tiny", method, {}, seed=seed)
            data = {"format": RESULT_FORMAT, "config_hash": config_hash(cfg), "epe/embedded": epe,
                    "epe/motorcycle": 4.0 + seed, "miou": 0.16 + 0.01 * seed, "jf": 0.45,
                    "eval_datasets": {**EVAL_DATASETS["tiny"], "flow": ["embedded", "motorcycle"]}}
            result_path(method, seed, tmp_path).parent.mkdir(parents=True, exist_ok=True)
            result_path(method, seed, tmp_path).write_text(json.dumps(data))
    recipe = config_hash(base_config(Setting("tiny")))
    preset_vc = base_config(Setting("tiny")).loss.vc
    for seed in range(3):
        write_point(tmp_path, "vc", preset_vc, 1.5, 0.16, recipe=recipe, seed=seed, jf=0.45)
        write_point(tmp_path, "vc", 0.0, 2.0 + 0.1 * seed, 0.14, recipe=recipe, seed=seed, jf=0.40)
    from mcjepa.claims import effect_text

    rows = claims(here(tmp_path))
    by_measure = {(r["claim"][:5], r["measure"]): r for r in rows}
    embedded = by_measure[("(i) M", "flow EPE (px), embedded")]
    assert embedded["verdict"] == "contradicted" and embedded["a_summary"]["n"] == 3
    assert by_measure[("(i) M", "flow EPE (px), motorcycle")]["verdict"] == "holds (not worse)"
    miou = by_measure[("(ii) ", "linear-probe mIoU (%)")]
    assert miou["b_summary"]["n"] == 0 and miou["verdict"].startswith("no verdict")  # no VICReg results stored
    assert by_measure[("(iii)", "flow EPE (px)")]["verdict"] == "holds"
    assert by_measure[("(iii)", "lowest per-level feature std")]["verdict"] == "no verdict (no spread in either group)"
    assert rows[-1]["verdict"] == "no verdict (0 values; 3 needed)"
    markdown = claims_markdown(rows)
    assert "| **contradicted** |" in markdown and "1.50 ± 0.02 (n=3)" in markdown and "Welch" in markdown
    assert f"| {effect_text(embedded)} |" in markdown and embedded["ci"][0] > 0  # contradicted: MC-JEPA's EPE higher
    json_path, md_path = save_claims(rows, tmp_path / "out")
    assert json.loads(json_path.read_text())["rows"][0]["verdict"] == "contradicted" and md_path.read_text() == markdown


def test_instability_row_counts_the_guard_stops(tmp_path):
    from mcjepa.claims import instability_row

    off = [write_point(tmp_path, "vc", 0.0, 2.0, 0.1, seed=s, diverged=True) for s in range(4)]
    on = [write_point(tmp_path, "vc", 0.1, 1.5, 0.2, seed=s) for s in range(4)]
    row = instability_row(off + on, 0.1)
    assert row["counts"] == {"with_vc": [0, 4], "without_vc": [4, 4], "steps": [7, 7, 7, 7]}
    assert row["p"] == pytest.approx(1 / 70) and row["verdict"].startswith("holds (collapse in 4 of 4 runs")
    assert row["difference"] == pytest.approx(-1.0) and all(math.isnan(v) for v in row["ci"])  # no t interval
    few = instability_row(off[:3] + on[:1], 0.1)
    assert few["p"] == pytest.approx(0.25) and few["verdict"].startswith("not shown (collapse in 3 of 3 runs")
    assert instability_row(off, 0.1)["verdict"].startswith("no verdict")


def test_the_demo_redraws_the_committed_claims_only_when_they_are_current(tmp_path):
    """`make demo` trains seed 0 only and redraws the claims table from the stored evaluations of seeds 0-2. It
    may do so only while every stored evaluation matches today's configs, or it would rewrite the committed
    table with n = 1 (they were once ignored by git as `runs/`); after a recipe change it leaves notebook 08
    out until the full profile re-measures."""
    from mcjepa.claims import METHODS, stale_evaluations
    from mcjepa.reproduce import CLAIMS_NOTEBOOK, FULL_SEEDS, notebook_jobs

    for method in METHODS:
        for seed in FULL_SEEDS:
            assert result_path(method, seed).is_file(), f"{result_path(method, seed)} is not in the repository"
    stale = stale_evaluations(FULL_SEEDS, Setting("tiny"))
    demo = [name for name, _ in notebook_jobs("tiny", tmp_path)]
    assert (CLAIMS_NOTEBOOK in demo) == (not stale), stale
    for method in METHODS:
        for seed in FULL_SEEDS:
            stored = method_result(method, Setting("tiny", seed=seed, runs_dir=tmp_path, progress=False),
                                   train=False)  # no run here: the stored file
            assert (stored is None) == (f"{method} seed {seed}" in stale)


def test_reference_results_are_measured_once_by_the_profile_and_only_read_by_the_table(tmp_path, monkeypatch):
    from mcjepa.claims import reference_result

    fake = FakeEvaluation(monkeypatch, finished=False)
    monkeypatch.setattr(claims_module, "untrained_run", lambda cfg, runs: tmp_path / "runs" / "untrained-x")
    assert reference_result("raw colour", here(tmp_path)) is None and fake.calls == []  # the table only reads
    raw = reference_result("raw colour", here(tmp_path), compute=True)
    assert (raw["miou"], raw["jf"]) == (0.16, 0.4) and fake.calls == [(("segmentation", "davis"), "embedded")]
    assert raw["config_hash"] == config_hash(run_config("tiny", "mc-jepa", {}, seed=0))
    assert reference_result("raw colour", here(tmp_path)) == raw  # stored, read back
    assert result_path("reference-raw-colour", 0, tmp_path).is_file()
    assert reference_result("untrained", here(tmp_path, 2), compute=True)["seed"] == 2
    assert reference_result("supervised", here(tmp_path), compute=True) is None  # not trained: not trained here
    assert fake.trained == []
    assert reference_result("supervised", Setting("paper", figures_dir=tmp_path), compute=True) is None
    with pytest.raises(ValueError, match="unknown reference"):
        reference_result("oracle", here(tmp_path))
    from mcjepa.claims import reference_results

    found = reference_results([0, 1, 2], here(tmp_path), compute=True)
    assert [r["seed"] for r in found["raw colour"]] == [0]  # no seed in raw colour: measured once
    assert [r["seed"] for r in found["untrained"]] == [0, 1, 2] and found["supervised"] == []


def test_content_rows_carry_their_references_and_range_shares():
    from mcjepa.claims import references_markdown, with_references

    row = {"a": "MC-JEPA", "b": "VICReg", "measure": "label-propagation J&F (%)", "factor": 100.0, "digits": 1,
           "a_summary": {"mean": 0.6, "n": 2}, "b_summary": {"mean": 0.3, "n": 2}}
    references = {"raw colour": [{"jf": 0.2}, {"jf": 0.2}], "untrained": [{"jf": 0.4}, {"jf": 0.4}],
                  "supervised": [{"jf": 0.75}, {"jf": 0.85}]}
    with_references(row, references, "jf")
    assert row["references"]["supervised"]["mean"] == pytest.approx(0.8)
    assert row["range"]["a"] == pytest.approx(0.5) and row["range"]["b"] == pytest.approx(-0.25)  # (0.3 - 0.4) / 0.4
    text = references_markdown([row])
    assert ("| 20.0 ± 0.0 (n=2) | 40.0 ± 0.0 (n=2) | 80.0 ± 7.1 (n=2) | MC-JEPA: 50 %, VICReg: below the best floor |"
            in text)
    no_ceiling = with_references(dict(row), {"raw colour": references["raw colour"]}, "jf")
    assert math.isnan(no_ceiling["range"]["a"])
    assert references_markdown([with_references(dict(row), {}, "jf")]) == ""  # nothing stored: no table
    read_back = {**no_ceiling, "range": {"a": None, "b": None}}  # save_json writes NaN as null
    assert "MC-JEPA: -, VICReg: -" in references_markdown([read_back])


def test_reference_means_average_the_stored_references_and_leave_missing_ones_out(monkeypatch):
    from mcjepa.claims import reference_means

    stored = {"raw colour": [{"miou": 0.24, "jf": 0.54}], "untrained": [{"miou": 0.42, "jf": 0.38},
                                                                       {"miou": 0.46, "jf": 0.40}],
              "supervised": []}
    monkeypatch.setattr(claims_module, "reference_results", lambda seeds, setting: stored)
    means = reference_means([0, 1], Setting("tiny"))
    assert means == pytest.approx({"raw colour": 0.24, "untrained": 0.44})  # no supervised result: left out
    assert reference_means([0, 1], Setting("tiny"), "jf") == pytest.approx({"raw colour": 0.54, "untrained": 0.39})

"""Manifests and `data verify`: good fixture trees pass, broken ones fail naming the path."""

import hashlib

import pytest
import yaml

import fixtures_data as fx
from mcjepa.data import manifests as M

FIXTURES = {
    "flyingchairs": fx.make_flyingchairs, "flyingthings3d": fx.make_flyingthings, "sintel": fx.make_sintel,
    "kitti2015": fx.make_kitti, "kitti2012": lambda root: fx.make_kitti(root, image_dir="colored_0"),
    "kitti_multiview": lambda root: fx.make_kitti_multiview(root, scenes=1, frames=range(3)),
    "kitti_raw": fx.make_kitti_raw, "hd1k": fx.make_hd1k, "imagenet": fx.make_imagenet,
    "pascal_voc": lambda root: fx.make_voc(root), "cityscapes": fx.make_cityscapes,
    "ade20k": fx.make_ade20k, "davis2017": fx.make_davis,
}
ROOT_OF = {"pascal_voc": "VOC2012", "ade20k": "ADEChallengeData2016"}


def test_every_dataset_has_a_complete_manifest():
    names = {p.stem for p in M.MANIFESTS_DIR.glob("*.yaml")}
    assert set(FIXTURES) | {"motorcycle", "opencv_doc", "embedded"} == names
    for name in names:
        manifest = M.load_manifest(name)
        for key in ("url", "licence", "citation", "notes", "checksums"):
            assert key in manifest, (name, key)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_trees_pass_in_min_mode(tmp_path, name, capsys):
    FIXTURES[name](tmp_path)
    root = tmp_path / ROOT_OF.get(name, "")
    assert M.main(["verify", name, str(root), "--counts", "fixture"]) == 0, capsys.readouterr().out
    report = M.verify_dataset(name, root, counts="min")
    assert report.ok and report.parsed > 0
    # the full-release counts do not match a 2-4 sample fixture (kitti_raw has no known count)
    assert M.verify_dataset(name, root, counts="full").ok == (name == "kitti_raw")


def _own_manifest(tmp_path, checksums=None):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    body = {"name": "chairs_small", "folders": ["data"],
            "split_files": [{"path": "FlyingChairs_train_val.txt", "lines": 3}],
            "patterns": [{"glob": "data/*_img1.ppm", "count": 3, "reader": "image"},
                         {"glob": "data/*_flow.flo", "count": 3, "reader": "flo"}],
            "checksums": checksums or {}}
    (manifests / "chairs_small.yaml").write_text(yaml.safe_dump(body))
    return manifests


def test_own_manifest_full_counts_and_checksums(tmp_path, capsys):
    root = tmp_path / "chairs"
    fx.make_flyingchairs(root)
    digest = hashlib.sha256((root / "data" / "00001_flow.flo").read_bytes()).hexdigest()
    manifests = _own_manifest(tmp_path, {"data/00001_flow.flo": digest})
    assert M.main(["verify", "chairs_small", str(root), "--manifests", str(manifests), "--sample", "5"]) == 0
    out = capsys.readouterr().out
    assert "found 3, expected 3" in out and "checked 1 checksums" in out and "parsed 6" in out


def test_broken_trees_fail_and_name_the_path(tmp_path, capsys):
    root = tmp_path / "chairs"
    fx.make_flyingchairs(root)
    manifests = _own_manifest(tmp_path, {"data/00002_img2.ppm": "0" * 64})
    (root / "data" / "00003_img1.ppm").unlink()  # missing file -> wrong count
    (root / "data" / "00001_flow.flo").write_bytes(b"PIEH\x02\x00")  # corrupt .flo (sampled: first file)
    (root / "data" / "00003_flow.flo").write_bytes(b"XXXX" + bytes(12))  # wrong magic (sampled: last file)
    report = M.verify_dataset("chairs_small", root, manifests, counts="full", sample=2)
    text = "\n".join(report.problems)
    assert not report.ok
    assert f"{root}/data/*_img1.ppm: found 2 files, expected 3" in text
    assert str(root / "data" / "00001_flow.flo") in text and "too short" in text
    assert str(root / "data" / "00003_flow.flo") in text and "magic" in text
    assert str(root / "data" / "00002_img2.ppm") in text and "sha256" in text
    assert M.main(["verify", "chairs_small", str(root), "--manifests", str(manifests)]) == 1
    assert "00003_flow.flo" in capsys.readouterr().out


def test_unreadable_png_and_missing_split_file(tmp_path):
    fx.make_kitti(tmp_path)
    bad = tmp_path / "training" / "flow_occ" / "000000_10.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    report = M.verify_dataset("kitti2015", tmp_path, counts="min")
    assert any(str(bad) in problem for problem in report.problems)
    fx.make_davis(tmp_path / "davis")
    (tmp_path / "davis" / "ImageSets" / "2017" / "train.txt").unlink()
    report = M.verify_dataset("davis2017", tmp_path / "davis", counts="min")
    assert report.problems == [f"{tmp_path / 'davis' / 'ImageSets' / '2017' / 'train.txt'}: missing split file"]


def test_missing_root_unknown_manifest_and_generated(tmp_path, capsys):
    assert M.main(["verify", "sintel", str(tmp_path / "nowhere")]) == 1
    assert str(tmp_path / "nowhere") in capsys.readouterr().out
    assert M.main(["verify", "no_such_dataset", str(tmp_path)]) == 2
    assert M.verify_dataset("embedded").ok
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "gen.yaml").write_text(yaml.safe_dump({"name": "gen", "kind": "generated",
                                                        "module": "mcjepa.data.synthetic", "provides": ["Nope"]}))
    assert "mcjepa.data.synthetic.Nope" in M.verify_dataset("gen", manifests_dir=manifests).problems[0]


def test_motorcycle_checksums_verify_offline():
    report = M.verify_dataset("motorcycle")
    assert report.ok and report.checksums_checked == 3

"""Flow metrics against slow per-pixel loops and hand-made threshold cases; padding, scaling, writers."""

import math
import struct

import numpy as np
import pytest
import torch

from mcjepa.eval.flow_metrics import (
    FlowMetricAccumulator,
    InputPadder,
    evaluate_flow_dataset,
    flow_metrics,
    kitti_frame_index,
    predict_flow_native,
    sintel_path_parts,
)


def slow_metrics(pred, gt, valid, occ=None):
    """Independent reference: explicit Python loop over pixels of one image (2,H,W)."""
    regions = {"all": [], "noc": [], "occ": []}
    _, h, w = gt.shape
    for y in range(h):
        for x in range(w):
            if not valid[y, x]:
                continue
            du = float(pred[0, y, x]) - float(gt[0, y, x])
            dv = float(pred[1, y, x]) - float(gt[1, y, x])
            e = math.sqrt(du * du + dv * dv)
            mag = math.sqrt(float(gt[0, y, x]) ** 2 + float(gt[1, y, x]) ** 2)
            rec = (e, e > 3 and (mag == 0 or e / mag > 0.05))
            regions["all"].append(rec)
            if occ is not None:
                regions["occ" if occ[y, x] else "noc"].append(rec)
    out = {}
    for r, recs in regions.items():
        suffix = "" if r == "all" else f"_{r}"
        n = len(recs)
        out["n" + suffix] = n
        if n:
            out["epe" + suffix] = sum(e for e, _ in recs) / n
            out["fl" + suffix] = 100.0 * sum(o for _, o in recs) / n
            for k in (1, 3, 5):
                out[f"px{k}" + suffix] = sum(e < k for e, _ in recs) / n
    return out


def test_matches_slow_reference_random():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(2, 9, 11, generator=g) * 20
    pred = gt + torch.randn(2, 9, 11, generator=g) * 4
    valid = torch.rand(9, 11, generator=g) > 0.2
    occ = torch.rand(9, 11, generator=g) > 0.6
    got = flow_metrics(pred, gt, valid, occ)
    ref = slow_metrics(pred, gt, valid, occ)
    assert 0 < ref["n_occ"] < ref["n"]
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    assert 0 < got["fl"] < 100 and 0 < got["px3"] < 1  # the case exercises both sides of the thresholds


def test_fl_corner_cases_hand_computed():
    # pixel: gt, pred -> outlier?
    cases = [
        ((0.0, 0.0), (3.0, 0.0), False),  # EPE exactly 3, gt = 0: not an outlier (strict >)
        ((0.0, 0.0), (3.5, 0.0), True),  # gt = 0, EPE > 3: outlier
        ((100.0, 0.0), (105.0, 0.0), False),  # EPE 5 = exactly 5% of |gt| = 100: not an outlier
        ((100.0, 0.0), (105.5, 0.0), True),  # 5.5 > 5 and > 3
        ((40.0, 30.0), (40.0, 33.5), True),  # |gt| = 50, EPE 3.5 > 3 and 7% > 5%
        ((80.0, 60.0), (80.0, 64.0), False),  # |gt| = 100, EPE 4 > 3 but 4% < 5%
        ((0.0, 0.0), (100.0, 0.0), False),  # huge error, but invalid pixel: excluded
    ]
    gt = torch.tensor([c[0] for c in cases]).T.reshape(2, 1, -1)
    pred = torch.tensor([c[1] for c in cases]).T.reshape(2, 1, -1)
    valid = torch.tensor([[True] * 6 + [False]])
    m = flow_metrics(pred, gt, valid)
    assert m["n"] == 6
    assert m["fl"] == pytest.approx(100.0 * 3 / 6)
    epes = [3.0, 3.5, 5.0, 5.5, 3.5, 4.0]
    assert m["epe"] == pytest.approx(sum(epes) / 6)
    assert m["px1"] == 0.0 and m["px3"] == 0.0  # EPE exactly 3 is not < 3
    assert m["px5"] == pytest.approx(4 / 6)  # 3, 3.5, 3.5, 4 (5.0 is not < 5)


def test_occlusion_regions_and_empty_region():
    gt = torch.zeros(2, 2, 2)
    pred = torch.zeros(2, 2, 2)
    pred[0, 0, 0] = 4.0  # outlier at an occluded pixel
    occ = torch.tensor([[True, False], [False, False]])
    m = flow_metrics(pred, gt, None, occ)
    assert m["n_occ"] == 1 and m["n_noc"] == 3
    assert m["fl_occ"] == 100.0 and m["fl_noc"] == 0.0 and m["fl"] == 25.0
    assert m["epe_occ"] == 4.0 and m["epe_noc"] == 0.0 and m["epe"] == 1.0
    m2 = flow_metrics(pred, gt, None, torch.zeros(2, 2, dtype=torch.bool))
    assert m2["n_occ"] == 0 and math.isnan(m2["epe_occ"])


def test_accumulator_pools_fl_and_averages_epe_per_image():
    # image A: 4 valid pixels, all EPE 1; image B: 1 valid pixel, EPE 10 (outlier).
    gt_a, pred_a = torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)
    pred_a[0] = 1.0
    gt_b, pred_b = torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)
    pred_b[1] = 10.0
    valid_b = torch.tensor([[True, False], [False, False]])
    acc = FlowMetricAccumulator()
    acc.update(pred_a, gt_a)
    acc.update(pred_b.unsqueeze(0), gt_b.unsqueeze(0), valid_b.unsqueeze(0))
    res = acc.compute()
    assert res["n_images"] == 2 and res["n"] == 5
    assert res["epe"] == pytest.approx((1.0 + 10.0) / 2)  # mean of per-image means
    assert res["epe_pooled"] == pytest.approx((4 * 1.0 + 10.0) / 5)
    assert res["fl"] == pytest.approx(100.0 / 5)  # pooled, not (0 + 100) / 2


def test_accumulator_batch_equals_sequential():
    g = torch.Generator().manual_seed(1)
    gt = torch.randn(3, 2, 5, 6, generator=g) * 10
    pred = gt + torch.randn(3, 2, 5, 6, generator=g) * 3
    valid = torch.rand(3, 5, 6, generator=g) > 0.3
    a, b = FlowMetricAccumulator(), FlowMetricAccumulator()
    a.update(pred, gt, valid)
    for i in range(3):
        b.update(pred[i], gt[i], valid[i])
    ra, rb = a.compute(), b.compute()
    per_image = [slow_metrics(pred[i], gt[i], valid[i])["epe"] for i in range(3)]
    assert ra["epe"] == pytest.approx(sum(per_image) / 3)
    for k in ra:
        assert ra[k] == pytest.approx(rb[k]), k


def test_shape_errors():
    with pytest.raises(ValueError):
        flow_metrics(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError):
        flow_metrics(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), valid=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError):
        FlowMetricAccumulator().compute()


@pytest.mark.parametrize("mode", ["center", "bottom_right"])
def test_padder_round_trip(mode):
    x = torch.rand(2, 3, 37, 50)
    padder = InputPadder(x.shape, stride=16, mode=mode)
    y = padder.pad_tensor(x)
    assert y.shape == (2, 3, 48, 64)
    assert torch.equal(padder.unpad(y), x)
    left, right, top, bottom = padder.pad
    assert left + right == 14 and top + bottom == 11
    # replicate padding: the padded border repeats the edge
    assert torch.equal(y[..., top, :][..., left : left + 50], x[..., 0, :])
    assert torch.equal(y[..., -1, left : left + 50], x[..., -1, :])
    assert torch.equal(y[..., top : top + 37, 0], x[..., :, 0])


def test_predict_native_constant_flow_scaled():
    # an estimator whose motion is a fixed fraction of the image size: (0.25 W, -0.125 H) in input pixels
    def flow_fn(f1, f2):
        b, _, h, w = f1.shape
        out = torch.empty(b, 2, h, w)
        out[:, 0] = 0.25 * w
        out[:, 1] = -0.125 * h
        return out

    # anisotropic rounding: 30x64 at scale 0.3 -> 9x19, so H/h = 3.333 but W/w = 3.368 (u, v rescaled apart)
    g = torch.rand(3, 30, 64)
    aniso = predict_flow_native(flow_fn, g, g, stride=1, scale=0.3)
    assert aniso.shape == (2, 30, 64)
    assert torch.allclose(aniso[0], torch.full((30, 64), 0.25 * 64), atol=1e-5)
    assert torch.allclose(aniso[1], torch.full((30, 64), -0.125 * 30), atol=1e-5)
    f = torch.rand(3, 64, 96)
    full = predict_flow_native(flow_fn, f, f, stride=16, scale=1.0)
    half = predict_flow_native(flow_fn, f, f, stride=16, scale=0.5)
    for out in (full, half):
        assert out.shape == (2, 64, 96)
        assert torch.allclose(out[0], torch.full((64, 96), 24.0))
        assert torch.allclose(out[1], torch.full((64, 96), -8.0))


def _smooth_texture(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0]


def test_predict_native_shift_estimator_at_half_scale():
    # true motion (dx, dy) = (4, -2) native px; a brute-force integer global-shift estimator run at half
    # resolution (with padding, non-multiple size) must come back as (4, -2) native px.
    big = _smooth_texture(80, 100)
    dx, dy = 4, -2
    frame1 = big[:, 10:60, 10:80]  # 50 x 70
    frame2 = big[:, 10 + dy : 60 + dy, 10 + dx : 80 + dx]  # frame2(x) = frame1(x + d): flow(x) = d ... sign:
    # forward flow maps x of frame1 to x + f in frame2, and frame1(x) = frame2(x - d), so f = -d.
    seen_shapes = []

    def flow_fn(f1, f2):
        seen_shapes.append(tuple(f1.shape))
        _, _, h, w = f1.shape
        best, best_err = (0, 0), float("inf")
        m = 6
        for u in range(-4, 5):
            for v in range(-4, 5):
                a = f1[..., m:h - m, m:w - m]
                b = f2[..., m + v : h - m + v, m + u : w - m + u]
                err = ((a - b) ** 2).mean().item()
                if err < best_err:
                    best, best_err = (u, v), err
        out = torch.zeros(f1.shape[0], 2, h, w)
        out[:, 0], out[:, 1] = best
        return out

    native = predict_flow_native(flow_fn, frame1, frame2, stride=8, scale=1.0)
    half = predict_flow_native(flow_fn, frame1, frame2, stride=8, scale=0.5)
    assert seen_shapes == [(1, 3, 56, 72), (1, 3, 32, 40)]  # 50x70 padded; 25x35 padded
    assert half.shape == native.shape == (2, 50, 70)
    assert torch.allclose(native[:, 5, 5], torch.tensor([-4.0, 2.0]))
    # the estimator saw (-2, 1) px at 35x25; rescaled by W/w = 70/35 and H/h = 50/25
    assert torch.allclose(half[0], torch.full((50, 70), -2.0 * 70 / 35))
    assert torch.allclose(half[1], torch.full((50, 70), 1.0 * 50 / 25))


class _PairDataset(torch.utils.data.Dataset):
    def __init__(self, n=3, with_gt=True, names=None):
        g = torch.Generator().manual_seed(3)
        self.items = []
        for i in range(n):
            s = {"frame1": torch.rand(3, 12, 20, generator=g), "frame2": torch.rand(3, 12, 20, generator=g),
                 "name": names[i] if names else f"{i:06d}_10"}
            if with_gt:
                s["flow"] = torch.randn(2, 12, 20, generator=g) * 5
                s["valid"] = torch.rand(12, 20, generator=g) > 0.2
            self.items.append(s)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_evaluate_flow_dataset_matches_slow_and_skips():
    ds = _PairDataset(3)
    ds.items[1] = {k: v for k, v in ds.items[1].items() if k not in ("flow", "valid")}
    const = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)

    def flow_fn(f1, f2):
        return const.expand(f1.shape[0], 2, *f1.shape[-2:]).clone()

    with pytest.warns(UserWarning, match="no 'flow'"):
        res = evaluate_flow_dataset(flow_fn, ds, stride=8, progress=False)
    assert res["n_skipped"] == 1 and res["n_images"] == 2
    refs = [slow_metrics(const[0].expand(2, 12, 20), ds[i]["flow"], ds[i]["valid"]) for i in (0, 2)]
    assert res["epe"] == pytest.approx((refs[0]["epe"] + refs[1]["epe"]) / 2)
    n = refs[0]["n"] + refs[1]["n"]
    assert res["fl"] == pytest.approx((refs[0]["fl"] * refs[0]["n"] + refs[1]["fl"] * refs[1]["n"]) / n)
    with pytest.raises(ValueError, match="ground-truth"), pytest.warns(UserWarning):
        evaluate_flow_dataset(flow_fn, _PairDataset(2, with_gt=False), stride=8, progress=False)


def test_name_parsing():
    assert kitti_frame_index("000123_10") == 123
    assert kitti_frame_index("testing/image_2/000007_10.png") == 7
    with pytest.raises(ValueError):
        kitti_frame_index("frame_a")
    assert sintel_path_parts({"name": "final/ambush_1/frame_0012"}) == ("final", "ambush_1", 12)
    assert sintel_path_parts({"name": "ambush_1/frame_0003.png"}, pass_name="clean") == ("clean", "ambush_1", 3)
    with pytest.raises(ValueError):
        sintel_path_parts({"name": "ambush_1/frame_0003"})


def _read_flo_reference(path):
    raw = open(path, "rb").read()
    assert raw[:4] == b"PIEH"
    w, h = struct.unpack("<ii", raw[4:12])
    return np.frombuffer(raw[12:], dtype="<f4").reshape(h, w, 2)


def _read_png16_rgb_reference(path):
    """Minimal independent PNG reader (zlib + the 5 row filters) for 16-bit RGB, big-endian samples."""
    import zlib

    raw = open(path, "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind, data = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert (depth, color) == (16, 2)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    data, bpp, stride = zlib.decompress(idat), 6, width * 6
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return np.frombuffer(b"".join(rows), dtype=">u2").reshape(height, width, 3).astype(np.uint16)


def test_submission_writers(tmp_path):
    pytest.importorskip("mcjepa.data.formats")

    from mcjepa.eval.flow_metrics import write_kitti_submission, write_sintel_submission

    def flow_fn(f1, f2):
        b, _, h, w = f1.shape
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        return torch.stack([xs / 4 - 1.5, -ys / 8], dim=0).expand(b, 2, h, w).clone()

    ds = _PairDataset(2, with_gt=False, names=["000004_10", "000011_10"])
    paths = write_kitti_submission(flow_fn, ds, tmp_path / "kitti", stride=1, progress=False)
    assert [p.name for p in paths] == ["000004_10.png", "000011_10.png"]
    img = _read_png16_rgb_reference(paths[1])  # RGB 16-bit: R = u, G = v, B = valid
    assert img.dtype == np.uint16 and img.shape == (12, 20, 3)
    expected = flow_fn(ds[1]["frame1"][None], None)[0].permute(1, 2, 0).numpy()
    decoded = (img[..., :2].astype(np.float64) - 2**15) / 64.0
    assert np.abs(decoded - expected).max() <= 1 / 64
    assert (img[..., 2] == 1).all()

    sds = _PairDataset(2, with_gt=False, names=["clean/alley_1/frame_0001", "clean/alley_1/frame_0002"])
    spaths = write_sintel_submission(flow_fn, sds, tmp_path / "sintel", stride=1, progress=False)
    assert spaths[1] == tmp_path / "sintel" / "clean" / "alley_1" / "frame_0002.flo"
    assert np.allclose(_read_flo_reference(spaths[1]), expected)

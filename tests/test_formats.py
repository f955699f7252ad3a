"""Round trips and malformed-file errors for mcjepa.data.formats."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from mcjepa.data import formats as F


def test_flo_roundtrip_and_byte_layout(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 10, (5, 7, 2)).astype(np.float32)
    path = tmp_path / "a.flo"
    F.write_flo(path, flow)
    raw = path.read_bytes()
    # independent check of the layout: magic, W, H, interleaved (u, v) row-major
    assert raw[:4] == b"PIEH" and struct.unpack("<f", raw[:4])[0] == 202021.25
    assert struct.unpack("<ii", raw[4:12]) == (7, 5)
    assert struct.unpack("<ff", raw[12:20]) == (flow[0, 0, 0], flow[0, 0, 1])
    assert struct.unpack("<f", raw[12 + 8 * 7: 16 + 8 * 7])[0] == flow[1, 0, 0]
    back = F.read_flo(path)
    assert back.dtype == np.float32 and back.shape == (5, 7, 2)
    np.testing.assert_array_equal(back, flow)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"XXXX" + b[4:], "magic"),
    (lambda b: b[:-4], "truncated"),
    (lambda b: b[:4] + struct.pack("<ii", 10**7, 10**7) + b[12:], "absurd"),
    (lambda b: b[:6], "too short"),
])
def test_flo_malformed(tmp_path, damage, message):
    path = tmp_path / "bad.flo"
    F.write_flo(path, np.zeros((3, 4, 2), np.float32))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as info:
        F.read_flo(path)
    assert str(path) in str(info.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.flo"):
        F.read_flo(tmp_path / "nope.flo")


def test_pfm_roundtrip_three_and_one_channel(tmp_path):
    rng = np.random.default_rng(1)
    color = rng.normal(size=(4, 6, 3)).astype(np.float32)
    grey = rng.normal(size=(4, 6)).astype(np.float32)
    F.write_pfm(tmp_path / "c.pfm", color)
    F.write_pfm(tmp_path / "g.pfm", grey)
    np.testing.assert_array_equal(F.read_pfm(tmp_path / "c.pfm"), color)
    np.testing.assert_array_equal(F.read_pfm(tmp_path / "g.pfm"), grey)
    raw = (tmp_path / "c.pfm").read_bytes()
    assert raw.startswith(b"PF\n6 4\n-1.0\n")
    # bottom-up storage: the first stored row is the image's last row
    first_row = np.frombuffer(raw[len(b"PF\n6 4\n-1.0\n"):][: 6 * 3 * 4], "<f4").reshape(6, 3)
    np.testing.assert_array_equal(first_row, color[-1])


def test_pfm_big_endian_by_positive_scale(tmp_path):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "be.pfm"
    path.write_bytes(b"Pf\n3 2\n1.0\n" + np.ascontiguousarray(np.flipud(data), ">f4").tobytes())
    np.testing.assert_array_equal(F.read_pfm(path), data)


@pytest.mark.parametrize("content, message", [
    (b"P6\n3 2\n-1.0\n" + b"\0" * 24, "magic"),
    (b"Pf\n3 2\n-1.0\n" + b"\0" * 8, "needs"),
    (b"Pf\nthree two\n-1.0\n", "malformed"),
])
def test_pfm_malformed(tmp_path, content, message):
    path = tmp_path / "bad.pfm"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        F.read_pfm(path)
    assert str(path) in str(info.value)


def test_kitti_png_roundtrip_is_lossless_16bit(tmp_path):
    rng = np.random.default_rng(2)
    flow = (rng.integers(-30000, 30000, (6, 9, 2)) / 64.0).astype(np.float32)
    valid = rng.random((6, 9)) > 0.3
    path = tmp_path / "000000_10.png"
    F.write_kitti_flow_png(path, flow, valid)
    back, back_valid = F.read_kitti_flow_png(path)
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert (back[~valid] == 0).all()
    # independent decode of the file with zlib (the writer uses filter 0 on every row)
    data = path.read_bytes()
    idat = b""
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            assert struct.unpack(">IIBB", data[pos + 8:pos + 18]) == (9, 6, 16, 2)  # 16-bit RGB
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(6, 1 + 9 * 6)
    assert (rows[:, 0] == 0).all()
    raw = np.frombuffer(rows[:, 1:].tobytes(), ">u2").reshape(6, 9, 3)
    np.testing.assert_array_equal(raw[..., 2], valid.astype(np.uint16))
    np.testing.assert_array_equal(raw[..., 0][valid], (flow[..., 0][valid] * 64 + 2**15).astype(np.uint16))


def test_kitti_png_rejects_8bit_and_garbage(tmp_path):
    eight = tmp_path / "eight.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(eight)
    with pytest.raises(ValueError, match="16-bit") as info:
        F.read_kitti_flow_png(eight)
    assert str(eight) in str(info.value)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match="garbage.png"):
        F.read_kitti_flow_png(garbage)


def test_kitti_png_writer_clamps_like_the_devkit_and_counts(tmp_path):
    # devkit: uint16(max(min(u * 64 + 2**15, 65535), 0)); hand-computed: 600 px -> 65535 -> 511.984375 px,
    # -600 px -> 0 -> -512 px, the largest exact value 511.984375 px and -512 px pass unchanged
    flow = np.array([[[600.0, -600.0], [511.984375, -512.0]], [[1.5, np.nan], [np.inf, 0.0]]])
    valid = np.array([[True, True], [True, False]])  # the Inf sits at an invalid pixel: not counted
    path = tmp_path / "x.png"
    with pytest.warns(UserWarning, match=r"3 flow values .* clamped") as record:
        clamped = F.write_kitti_flow_png(path, flow, valid)
    assert clamped == 3 and str(path) in str(record[0].message)
    back, back_valid = F.read_kitti_flow_png(path)
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[0, 0], [65535 / 64 - 512, -512.0])
    np.testing.assert_array_equal(back[0, 1], [511.984375, -512.0])
    np.testing.assert_array_equal(back[1, 0], [1.5, -512.0])  # NaN at a valid pixel -> 0 -> -512 px
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.write_kitti_flow_png(path, np.zeros((1, 1, 2))) == 0  # nothing to clamp: no warning


def test_palette_png_roundtrip_and_voc_palette(tmp_path):
    palette = F.voc_palette()
    # known VOC colours: 1 aeroplane (128,0,0), 2 bicycle (0,128,0), 15 person (192,128,128), 255 void (224,224,192)
    assert palette[1].tolist() == [128, 0, 0] and palette[2].tolist() == [0, 128, 0]
    assert palette[15].tolist() == [192, 128, 128] and palette[255].tolist() == [224, 224, 192]
    labels = np.random.default_rng(3).integers(0, 5, (7, 5))
    labels[0, 0] = 255
    path = tmp_path / "00000.png"
    F.write_palette_png(path, labels)
    indices, stored_palette = F.read_palette_png(path, return_palette=True)
    np.testing.assert_array_equal(indices, labels)
    np.testing.assert_array_equal(stored_palette[:256], palette)
    np.testing.assert_array_equal(F.read_label_png(path), labels)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match="mode 'P'"):
        F.read_palette_png(rgb)
    with pytest.raises(ValueError, match="rgb.png"):
        F.read_label_png(rgb)


@pytest.mark.parametrize("suffix", [".png", ".ppm", ".jpg"])
def test_read_image_formats(tmp_path, suffix):
    yy, xx = np.mgrid[0:12, 0:16]
    image = np.stack([xx * 10, yy * 12, (xx + yy) * 5], -1).astype(np.uint8)  # smooth: JPEG stays close
    path = tmp_path / f"im{suffix}"
    F.write_image(path, image)
    back = F.read_image(path)
    assert back.shape == (12, 16, 3) and back.dtype == np.uint8
    if suffix == ".jpg":
        assert np.abs(back.astype(int) - image).mean() < 4
    else:
        np.testing.assert_array_equal(back, image)


def test_read_image_grey_becomes_rgb_and_corrupt_is_named(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((3, 4), 77, np.uint8)).save(grey)
    assert (F.read_image(grey) == 77).all() and F.read_image(grey).shape == (3, 4, 3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match="bad.jpg"):
        F.read_image(bad)


def test_read_flow_any_validity_rule(tmp_path):
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = [1e4, 0]
    flow[1, 2] = [np.nan, 1]
    F.write_flo(tmp_path / "f.flo", flow)
    back, valid = F.read_flow_any(tmp_path / "f.flo")
    assert valid.tolist() == [[False, True, True], [True, True, False]]
    assert np.isfinite(back).all()

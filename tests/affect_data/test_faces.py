"""Face crop geometry (box crop, eye-levelling alignment) and the crop cache."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image, ImageDraw

from affect_data.faces import (
    CropCache,
    align_face,
    align_landmarks,
    alignment_transform,
    alignment_visible_fraction,
    box_visible_fraction,
    crop_box,
    default_cache_dir,
    eye_centers,
)


def template_landmarks() -> np.ndarray:
    """68 points of an upright face centred on (0, 0), eyes 40 px apart (iBUG 300-W order)."""
    points = np.zeros((68, 2))
    jaw = np.linspace(-np.pi * 0.9, -np.pi * 0.1, 17)
    points[0:17] = np.column_stack([45 * np.cos(jaw), -55 * np.sin(jaw) - 5])  # chin below the eyes
    points[17:27] = np.column_stack([np.linspace(-35, 35, 10), np.full(10, -32)])  # brows
    points[27:36] = np.column_stack([np.zeros(9), np.linspace(-15, 15, 9)])  # nose
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.column_stack([8 * np.cos(ring), 4 * np.sin(ring)])
    points[36:42] = eye + np.array([-20, -20])
    points[42:48] = eye + np.array([20, -20])
    mouth = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    points[48:68] = np.column_stack([18 * np.cos(mouth), 6 * np.sin(mouth) + 28])
    return points


def rotated_face(angle_deg: float, centre=(210.0, 190.0), size=(400, 380)):
    """A white image with dark eye blobs, and its landmarks, the face rotated by ``angle_deg``."""
    angle = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = template_landmarks() @ rotation.T + centre
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for eye in eye_centers(landmarks):
        draw.ellipse([*(eye - 5), *(eye + 5)], fill="black")
    return image, landmarks


def dark_centroids(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (x, y) of the dark pixels in the left and right halves."""
    dark = np.asarray(image.convert("L")) < 100
    half = dark.shape[1] // 2
    out = []
    for part, dx in ((dark[:, :half], 0), (dark[:, half:], half)):
        ys, xs = np.nonzero(part)
        out.append(np.array([xs.mean() + dx, ys.mean()]))
    return out[0], out[1]


def test_crop_box_uses_pil_order_and_clips():
    image = Image.fromarray(np.arange(100 * 80 * 3, dtype=np.uint32).reshape(80, 100, 3).astype(np.uint8))
    crop = crop_box(image, (10, 20, 50, 60))
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(image)[20:60, 10:50])
    assert crop_box(image, (-10, -10, 20, 30)).size == (20, 30)
    assert crop_box(image, (90, 70, 200, 200)).size == (10, 10)
    assert crop_box(image, (100, 0, 120, 10)) is None


@pytest.mark.parametrize("angle", [-35.0, -10.0, 0.0, 20.0, 40.0])
def test_align_face_levels_the_eyes(angle):
    image, landmarks = rotated_face(angle)
    aligned = align_face(image, landmarks, size=112)
    assert aligned.size == (112, 112)
    left, right = dark_centroids(aligned)
    assert abs(left[1] - right[1]) < 1.0  # level in the pixels, not just in the arithmetic
    assert right[0] - left[0] > 20  # the eye on the image's left stays on the left (no flip)
    assert abs((left[0] + right[0]) / 2 - 56) < 1.5  # eyes centred horizontally
    moved = align_landmarks(landmarks, size=112)
    eyes = eye_centers(moved)
    assert abs(eyes[0][1] - eyes[1][1]) < 1e-9
    np.testing.assert_allclose(eyes[0], left, atol=1.0)
    np.testing.assert_allclose(eyes[1], right, atol=1.0)
    assert (moved > 0).all() and (moved < 112).all()  # the margin keeps every landmark inside


def test_alignment_is_rotation_invariant_and_margin_scales():
    _, upright = rotated_face(0.0)
    _, tilted = rotated_face(30.0)
    np.testing.assert_allclose(align_landmarks(upright), align_landmarks(tilted), atol=1e-9)
    span = np.ptp(align_landmarks(upright, margin=0.0), axis=0).max()
    assert span == pytest.approx(112)
    assert np.ptp(align_landmarks(upright, margin=0.5), axis=0).max() == pytest.approx(56)
    assert alignment_transform(upright).shape == (2, 3)


def test_alignment_rejects_bad_landmarks():
    with pytest.raises(ValueError, match="68"):
        align_landmarks(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="coincide"):
        align_landmarks(np.ones((68, 2)))
    nan = template_landmarks()
    nan[3] = [np.nan, 1.0]
    with pytest.raises(ValueError, match=r"non-finite values: 1 point\(s\), the first point 3"):
        align_landmarks(nan)
    with pytest.raises(ValueError, match="size"):
        alignment_transform(template_landmarks(), size=0)


def test_crop_cache_names_and_atomic_writes(tmp_path):
    cache = CropCache(tmp_path / "cache")
    name = cache.name("img_0", "img.jpg", (1, 2, 3, 4))
    assert name != cache.name("img_0", "img.jpg", (1, 2, 3, 5))
    assert name == cache.name("img_0", "img.jpg", (1, 2, 3, 4))
    assert not cache.has(name)
    path = cache.save(Image.new("RGB", (4, 4), "red"), name)
    assert cache.has(name) and path == cache.path(name) and path.is_absolute()
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left behind
    (tmp_path / "cache" / "empty.jpg").write_bytes(b"")
    assert not cache.has("empty.jpg")


def test_default_cache_dir_is_next_to_the_root(tmp_path):
    assert default_cache_dir(tmp_path / "expw") == (tmp_path / "expw_crops").absolute()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_crops_get_the_users_normal_permissions(tmp_path, umask):
    # Before: mkstemp's 0600 survived the rename, so crops shared with a group were unreadable to it.
    previous = os.umask(umask)
    try:
        path = CropCache(tmp_path / "cache").save(Image.new("RGB", (4, 4)), "a.jpg")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_visible_fractions():
    assert box_visible_fraction((100, 80), (10, 10, 50, 50)) == 1.0
    assert box_visible_fraction((100, 80), (90, 70, 110, 90)) == 0.25
    assert box_visible_fraction((100, 80), (200, 0, 250, 50)) == 0.0
    face = template_landmarks() + 100  # a face of about 90 x 100 px around (100, 100)
    right = face + np.array([100, 0])  # centred on the image's right edge
    assert alignment_visible_fraction((200, 200), face) == 1.0
    assert 0.4 < alignment_visible_fraction((200, 200), right) < 0.6
    assert alignment_visible_fraction((200, 200), face + 1000) == 0.0
    # The fraction is what align_face shows: the black share of the crop agrees.
    crop = np.asarray(align_face(Image.new("RGB", (200, 200), "white"), right, size=64).convert("L"))
    assert abs((crop > 128).mean() - alignment_visible_fraction((200, 200), right)) < 0.05


def test_long_stems_are_cut(tmp_path):
    name = CropCache(tmp_path).name("x" * 400, "a")
    assert len(name) == CropCache.MAX_STEM + len("_0123456789.jpg")


def test_a_crop_that_fails_to_write_leaves_the_old_one_and_no_temporary(tmp_path, monkeypatch):
    cache = CropCache(tmp_path / "cache")
    path = cache.save(Image.new("RGB", (4, 4), "red"), "a.jpg")
    before = path.read_bytes()

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.save(Image.new("RGB", (4, 4), "blue"), "a.jpg")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["a.jpg"]

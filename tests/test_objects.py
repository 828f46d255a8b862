"""Procedural multi-object scenes: glyphs, the numpy window writer against hand placements and against the
model's spatial transformer, and the labels (counts, z_where, boxes) against the pixels."""

import math

import numpy as np
import pytest
import torch

from probrep.data.objects import (
    GLYPH_SIZE,
    STROKE_NAMES,
    MultiObjects,
    glyph_bank,
    glyph_names,
    paste_windows,
    render_stroke,
    window_boxes,
)
from probrep.models.air.spatial import window_to_image


def test_glyph_bank_is_binary_distinct_and_never_touches_the_window_border():
    bank = glyph_bank()
    assert bank.shape == (85, GLYPH_SIZE, GLYPH_SIZE) and bank.dtype == np.uint8
    assert set(np.unique(bank)) == {0, 1}
    assert len(glyph_names()) == len(bank) and len(set(glyph_names())) == len(bank)
    assert (bank.reshape(len(bank), -1).sum(1) >= 60).all()  # every glyph has ink
    ring = bank.copy()
    ring[:, 2:-2, 2:-2] = 0
    assert ring.sum() == 0  # a 2-pixel empty border: no rotation clipped a glyph
    flat = bank.reshape(len(bank), -1)
    # all glyphs differ except the rotations that map a symmetric shape onto itself
    distinct = len({row.tobytes() for row in flat})
    assert distinct >= 60


def test_bar_stroke_by_hand():
    # Horizontal bar of half width 1.75 px through the window centre, which lies on a pixel edge (28 is even):
    # rows 12..15 cover y in [-2, 2]; pixel rows with y in [1, 2] have 3 of 4 sample rows within 1.75 -> on.
    bar = render_stroke("bar", 0.0)
    assert np.flatnonzero(bar.any(axis=1)).tolist() == [12, 13, 14, 15]
    np.testing.assert_array_equal(bar, bar[::-1])  # mirror symmetric
    np.testing.assert_array_equal(bar, bar[:, ::-1])
    # 20 px of straight stroke (columns 4..23) plus round caps of radius 1.75
    assert bar[13, 4:24].all() and bar[13, :2].sum() == 0 and bar[13, 26:].sum() == 0


def test_quarter_turn_of_a_stroke_is_a_rot90():
    for name in ("ell", "tee", "hook"):
        np.testing.assert_array_equal(render_stroke(name, math.pi / 2), np.rot90(render_stroke(name, 0.0)))


def test_unknown_stroke_is_refused():
    with pytest.raises(ValueError, match="unknown stroke glyph 'blob'"):
        render_stroke("blob", 0.0)
    assert "ring" in STROKE_NAMES


def test_paste_windows_by_hand_when_the_window_aligns_with_pixels():
    # 10 px window on a 20 px canvas at s = 2: it covers exactly 10 pixels; its left edge sits at pixel
    # 10 x + 5 - 5 = (x + 1) * 10 - 5, so x = (c0 - 5) / 10 starts it at column c0. Bilinear reads hit pixel centres.
    rng = np.random.default_rng(0)
    window = rng.random((10, 10))
    c0, r0 = 7, 3
    z_where = np.array([[2.0, (c0 - 5) / 10, (r0 - 5) / 10]])
    canvas = paste_windows(window[None], z_where, 20)[0]
    expected = np.zeros((20, 20))
    expected[r0 : r0 + 10, c0 : c0 + 10] = window
    np.testing.assert_allclose(canvas, expected, atol=1e-12)
    np.testing.assert_allclose(window_boxes(z_where, 20)[0], [c0, r0, c0 + 10, r0 + 10])


def test_paste_windows_equals_the_models_grid_sample_writer():
    rng = np.random.default_rng(1)
    bank = glyph_bank()
    glyphs = bank[rng.integers(0, len(bank), 16)].astype(np.float64)
    z_where = np.column_stack([rng.uniform(1.2, 3.5, 16), rng.uniform(-0.8, 0.8, 16), rng.uniform(-0.8, 0.8, 16)])
    ours = paste_windows(glyphs, z_where, 37)
    theirs = window_to_image(torch.from_numpy(glyphs), torch.from_numpy(z_where), 37).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_scene_labels_reproduce_the_pixels():
    gen = MultiObjects()
    scenes = gen.sample(300, seed=3)
    n, k = len(scenes), gen.max_objects
    assert scenes.images.shape == (n, 1, 50, 50) and scenes.images.dtype == np.float32
    assert scenes.z_where.shape == (n, k, 3) and scenes.boxes.shape == (n, k, 4) and scenes.windows.shape == (n, k, 4)
    np.testing.assert_array_equal(scenes.present.sum(1), scenes.counts)
    np.testing.assert_array_equal(scenes.glyphs < 0, ~scenes.present)
    assert set(np.unique(scenes.counts)) == {0, 1, 2}
    # redraw every scene from its labels with the model's transformer: max over its objects
    bank = torch.from_numpy(glyph_bank().astype(np.float64))
    redrawn = np.zeros((n, 50, 50))
    for slot in range(k):
        idx = np.flatnonzero(scenes.present[:, slot])
        drawn = window_to_image(
            bank[scenes.glyphs[idx, slot]], torch.from_numpy(scenes.z_where[idx, slot].astype(np.float64)), 50
        )
        redrawn[idx] = np.maximum(redrawn[idx], drawn.numpy())
    np.testing.assert_allclose(scenes.images[:, 0], redrawn, atol=2e-5)  # labels are float32
    assert (scenes.images[scenes.counts == 0] == 0).all()


def test_objects_lie_inside_the_canvas_at_the_promised_scale_with_little_overlap():
    gen = MultiObjects(max_objects=3, max_overlap=0.1)
    scenes = gen.sample(400, seed=4)
    on = scenes.present
    s = scenes.z_where[..., 0][on]
    k = s * GLYPH_SIZE / 50  # the shrink factor of each object
    assert np.all(np.abs(k - 1.3) <= 2 * 0.05 + 1e-6) and abs(k.mean() - 1.3) < 0.01
    w = scenes.windows[on]
    assert w.min() >= -1e-4 and w.max() <= 50 + 1e-4  # whole windows inside
    np.testing.assert_allclose(w[:, 2] - w[:, 0], 50 / s, rtol=1e-5)  # a window spans H / s pixels
    b = scenes.boxes
    for i in range(len(scenes)):
        for p in range(3):
            for q in range(p + 1, 3):
                if on[i, p] and on[i, q]:
                    iw = min(b[i, p, 2], b[i, q, 2]) - max(b[i, p, 0], b[i, q, 0])
                    ih = min(b[i, p, 3], b[i, q, 3]) - max(b[i, p, 1], b[i, q, 1])
                    areas = [(b[i, r, 2] - b[i, r, 0]) * (b[i, r, 3] - b[i, r, 1]) for r in (p, q)]
                    assert max(iw, 0) * max(ih, 0) <= 0.1 * min(areas) + 1e-4
    # ink boxes hold the ink: no object pixel lies outside the union of its scene's boxes
    img = scenes.images[:, 0]
    rows, cols = np.arange(50) + 0.5, np.arange(50) + 0.5
    for i in np.flatnonzero(scenes.counts > 0)[:50]:
        covered = np.zeros((50, 50), dtype=bool)
        for r in np.flatnonzero(on[i]):
            x0, y0, x1, y1 = b[i, r]
            covered |= ((rows >= y0 - 1) & (rows <= y1 + 1))[:, None] & ((cols >= x0 - 1) & (cols <= x1 + 1))[None]
        assert img[i][~covered].max(initial=0.0) == 0.0


def test_same_seed_same_scenes_and_the_small_tier():
    a, b = MultiObjects().sample(20, seed=7), MultiObjects().sample(20, seed=7)
    c = MultiObjects().sample(20, seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.z_where, b.z_where)
    assert not np.array_equal(a.images, c.images)
    small = MultiObjects.tier("small")
    assert small.image_size == 24 and abs(small.model_scale - 2.7 * 24 / 28) < 1e-12
    scenes = small.sample(10, seed=0)
    assert scenes.images.shape == (10, 1, 24, 24)
    sub = scenes[:4]
    assert len(sub) == 4 and sub.images.shape == (4, 1, 24, 24)
    x, counts = scenes.tensors()
    assert x.dtype == torch.float32 and counts.dtype == torch.int64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 4}, "image_size"),
        ({"max_objects": 5}, "max_objects"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"scale": 0.3}, "scale"),
        ({"max_overlap": 1.5}, "max_overlap"),
        ({"glyphs": [0, 999]}, "glyphs"),
    ],
)
def test_bad_generator_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiObjects(**kwargs)


def test_bad_sample_arguments_are_named():
    with pytest.raises(ValueError, match="n must be"):
        MultiObjects().sample(-1)
    with pytest.raises(ValueError, match="unknown tier"):
        MultiObjects.tier("huge")
    with pytest.raises(RuntimeError, match="could not place"):
        MultiObjects(max_objects=4, min_objects=4, max_overlap=0.0, scale=1.0).sample(5, seed=0, max_tries=3)

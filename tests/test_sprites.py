"""Tests for the procedural dSprites regeneration: factor grid, indexing, geometry and the torch view."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from probrep.data import DSprites, render_sprite
from probrep.data.sprites import MARGIN, PATCH_SIZE

N_IMAGES = 737280


@pytest.fixture(scope="module")
def ds() -> DSprites:
    return DSprites()


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    img = np.asarray(img).reshape(img.shape[-2:])
    rows, cols = np.nonzero(img)
    return float(rows.mean()), float(cols.mean())


# ---------------------------------------------------------------- factor grid and indexing


def test_counts_and_sizes(ds: DSprites) -> None:
    assert len(ds) == N_IMAGES
    assert ds.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert ds.factor_sizes == (1, 3, 6, 40, 32, 32)
    np.testing.assert_array_equal(ds.latents_sizes, [1, 3, 6, 40, 32, 32])
    np.testing.assert_array_equal(ds.strides, [737280, 245760, 40960, 1024, 32, 1])
    assert ds.latents_values.shape == (N_IMAGES, 6) and ds.latents_values.dtype == np.float64
    assert ds.latents_classes.shape == (N_IMAGES, 6) and ds.latents_classes.dtype == np.int64


def test_factor_values(ds: DSprites) -> None:
    color, shape, scale, orient, pos_x, pos_y = ds.factor_values
    np.testing.assert_array_equal(color, [1.0])
    np.testing.assert_array_equal(shape, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(scale, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert len(orient) == 40 and orient[0] == 0.0 and orient[-1] == 2 * np.pi
    np.testing.assert_allclose(np.diff(orient), 2 * np.pi / 39)
    for pos in (pos_x, pos_y):
        assert len(pos) == 32 and pos[0] == 0.0 and pos[-1] == 1.0
        np.testing.assert_allclose(np.diff(pos), 1 / 31)
    # latents_values is the per-factor value lookup of latents_classes, as in the original release.
    cls = ds.latents_classes
    for f, vals in enumerate(ds.factor_values):
        np.testing.assert_array_equal(ds.latents_values[:, f], vals[cls[:, f]])


def test_classes_ordering_posy_fastest(ds: DSprites) -> None:
    np.testing.assert_array_equal(ds.index_to_classes(0), [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(ds.index_to_classes(1), [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ds.index_to_classes(32), [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(ds.index_to_classes(1024), [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(ds.index_to_classes(245760), [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(ds.index_to_classes(N_IMAGES - 1), [0, 2, 5, 39, 31, 31])


def test_index_classes_round_trip_all(ds: DSprites) -> None:
    idx = np.arange(N_IMAGES)
    cls = ds.latents_classes
    # Independent reference for the row-major order.
    expected = np.stack(np.unravel_index(idx, ds.factor_sizes), axis=1)
    np.testing.assert_array_equal(cls, expected)
    np.testing.assert_array_equal(ds.classes_to_index(cls), idx)


def test_index_classes_round_trip_random(ds: DSprites) -> None:
    rng = np.random.default_rng(3)
    idx = rng.integers(0, N_IMAGES, size=1000)
    np.testing.assert_array_equal(ds.classes_to_index(ds.index_to_classes(idx)), idx)
    for i in idx[:20]:
        back = ds.classes_to_index(ds.index_to_classes(int(i)))
        assert isinstance(back, int) and back == i
    cls = ds.sample_factors(500, rng)
    np.testing.assert_array_equal(ds.index_to_classes(ds.classes_to_index(cls)), cls)


def test_bad_inputs(ds: DSprites) -> None:
    for bad in (-1, N_IMAGES, N_IMAGES + 5):
        with pytest.raises(IndexError):
            ds[bad]
    with pytest.raises(IndexError):
        ds[np.array([0, 5, -2])]
    with pytest.raises(IndexError):
        ds.index_to_classes(np.array([3, N_IMAGES]))
    with pytest.raises(TypeError):
        ds.index_to_classes(np.array([1.5]))
    with pytest.raises(ValueError, match=r"'scale'.*\b6\b"):
        ds.render(np.array([0, 0, 6, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"'posY'.*-1"):
        ds.render(np.array([[0, 0, 0, 0, 0, 0], [0, 1, 2, 3, 4, -1]]))
    with pytest.raises(ValueError, match=r"'color'.*\b1\b"):
        ds.classes_to_index([1, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="shape"):
        ds.render(np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="integers"):
        ds.render(np.zeros(6, dtype=float))
    with pytest.raises(ValueError):
        render_sprite(3, 1.0, 0.0)
    with pytest.raises(ValueError):
        ds.sample_factors(-1, 0)


# ---------------------------------------------------------------- images


def test_images_binary_float32_shapes(ds: DSprites) -> None:
    img = ds[12345]
    assert img.shape == (1, 64, 64) and img.dtype == np.float32
    batch = ds[np.arange(100, 164)]
    assert batch.shape == (64, 1, 64, 64) and batch.dtype == np.float32
    assert set(np.unique(batch)) == {0.0, 1.0}
    assert (batch.sum(axis=(1, 2, 3)) > 0).all()
    np.testing.assert_array_equal(batch[5], ds[105])
    cls = ds.index_to_classes(np.arange(100, 164))
    np.testing.assert_array_equal(ds.render(cls), batch)
    assert ds.render(cls[0]).shape == (1, 64, 64)
    assert ds.render(np.zeros((0, 6), dtype=np.int64)).shape == (0, 1, 64, 64)
    np.testing.assert_array_equal(ds[3:7], ds[np.arange(3, 7)])


def test_images_materialise(ds: DSprites) -> None:
    idx = np.array([0, 7, 99999, N_IMAGES - 1])
    u8 = ds.images(idx)
    f32 = ds.images(idx, dtype=np.float32)
    assert u8.dtype == np.uint8 and f32.dtype == np.float32 and u8.shape == (4, 1, 64, 64)
    np.testing.assert_array_equal(u8.astype(np.float32), ds[idx])
    np.testing.assert_array_equal(f32, ds[idx])
    with pytest.raises(ValueError):
        ds.images(idx, dtype=np.float64)


def test_orientation_endpoints_identical(ds: DSprites) -> None:
    bank = ds.patch_bank
    # Orientation 39 is 2*pi, the same rotation as orientation 0, as in the original release.
    np.testing.assert_array_equal(bank[:, :, 0], bank[:, :, 39])
    # But neighbouring orientations of the asymmetric heart do differ.
    assert (bank[2, 5, 0] != bank[2, 5, 1]).any()
    first = ds.render(np.array([[0, s, 3, 0, 10, 20] for s in range(3)]))
    last = ds.render(np.array([[0, s, 3, 39, 10, 20] for s in range(3)]))
    np.testing.assert_array_equal(first, last)


@pytest.mark.parametrize("scale", [0.5, 0.7, 1.0])
def test_square_quarter_turn_invariant(scale: float) -> None:
    base = render_sprite(0, scale, 0.0)
    assert base.sum() > 0
    for angle in (np.pi / 2, np.pi, 3 * np.pi / 2, 2 * np.pi, -np.pi / 2):
        np.testing.assert_array_equal(render_sprite(0, scale, angle), base)
    # An eighth turn is a diamond, which must differ.
    assert (render_sprite(0, scale, np.pi / 4) != base).any()


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_quarter_turn_is_exact_pixel_rotation(shape: int) -> None:
    # The rotation centre is a symmetry point of the sample grid, so rotating the shape by pi/2 must equal
    # rotating the rendered patch by 90 degrees (counter-clockwise on screen).
    for angle in (0.3, 1.0):
        base = render_sprite(shape, 0.8, angle)
        np.testing.assert_array_equal(render_sprite(shape, 0.8, angle + np.pi / 2), np.rot90(base))
    base = render_sprite(shape, 0.8, 0.0)
    np.testing.assert_array_equal(render_sprite(shape, 0.8, np.pi), np.rot90(base, 2))


def test_shape_geometry() -> None:
    # The axis-aligned square is a full odd-sized block (no clipped corners), 2 px wider per scale step.
    for scale, width in zip(np.linspace(0.5, 1.0, 6), (7, 9, 11, 13, 15, 17)):
        square = render_sprite(0, scale, 0.0)
        rows, cols = np.nonzero(square)
        assert square.sum() == width**2 and np.ptp(rows) + 1 == width and np.ptp(cols) + 1 == width
    # The ellipse is elongated about 2:1 along x at orientation 0.
    ellipse = render_sprite(1, 1.0, 0.0)
    rows, cols = np.nonzero(ellipse)
    assert np.ptp(cols) + 1 == 19 and np.ptp(rows) + 1 == 9
    # The heart is left-right symmetric, upright (lobes on top: more mass above the bbox centre),
    # and about 18 px wide at full scale.
    heart = render_sprite(2, 1.0, 0.0)
    np.testing.assert_array_equal(heart, heart[:, ::-1])
    rows, cols = np.nonzero(heart)
    assert 17 <= np.ptp(cols) + 1 <= 19
    assert rows.mean() < (rows.min() + rows.max()) / 2
    # All sprites are centred on the patch centre pixel.
    c = (PATCH_SIZE - 1) / 2
    assert centre_of_mass(square) == (c, c) and centre_of_mass(ellipse) == (c, c)


def test_position_steps_move_one_pixel(ds: DSprites) -> None:
    for shape, orient in ((0, 0), (1, 7), (2, 13)):
        base = np.array([0, shape, 2, orient, 10, 20])
        r0, c0 = centre_of_mass(ds.render(base))
        step_x = base.copy()
        step_x[4] += 1
        r1, c1 = centre_of_mass(ds.render(step_x))
        assert c1 - c0 == pytest.approx(1.0, abs=1e-9) and r1 - r0 == pytest.approx(0.0, abs=1e-9)
        step_y = base.copy()
        step_y[5] += 1
        r2, c2 = centre_of_mass(ds.render(step_y))
        assert r2 - r0 == pytest.approx(1.0, abs=1e-9) and c2 - c0 == pytest.approx(0.0, abs=1e-9)
    # The square's centre runs over pixels 16..47, symmetric in the 64-pixel canvas.
    assert centre_of_mass(ds.render(np.array([0, 0, 5, 0, 0, 0]))) == (16.0, 16.0)
    assert centre_of_mass(ds.render(np.array([0, 0, 5, 0, 31, 0]))) == (16.0, 47.0)
    assert centre_of_mass(ds.render(np.array([0, 0, 5, 0, 0, 31]))) == (47.0, 16.0)
    assert MARGIN + (PATCH_SIZE - 1) // 2 == 16


def test_no_sprite_touches_border(ds: DSprites) -> None:
    bank = ds.patch_bank
    assert bank.shape == (3, 6, 40, PATCH_SIZE, PATCH_SIZE)
    # Sprites are never clipped by their patch: the patch's outer ring is empty.
    ring = bank[..., 0, :].sum() + bank[..., -1, :].sum() + bank[..., :, 0].sum() + bank[..., :, -1].sum()
    assert ring == 0
    # Every one of the 720 sprites at the four extreme positions keeps rows/cols 0 and 63 empty.
    sprite = np.stack(np.meshgrid(range(3), range(6), range(40), indexing="ij"), axis=-1).reshape(-1, 3)
    n = len(sprite)
    cls = [
        np.column_stack([np.zeros(n, int), sprite, np.full(n, px), np.full(n, py)])
        for px, py in ((0, 0), (0, 31), (31, 0), (31, 31))
    ]
    imgs = ds.render(np.concatenate(cls))[:, 0]
    assert imgs.shape == (2880, 64, 64)
    assert (imgs.sum(axis=(1, 2)) > 0).all()
    border = imgs[:, 0, :].sum() + imgs[:, 63, :].sum() + imgs[:, :, 0].sum() + imgs[:, :, 63].sum()
    assert border == 0


def test_areas_scale_quadratically(ds: DSprites) -> None:
    area = ds.patch_bank.sum(axis=(-1, -2)).astype(float)  # [shape, scale, orientation]
    scales = ds.factor_values[2]
    # Continuous areas at scale 1 (px^2): square 16.4^2, ellipse pi*10*5, heart 3.6595 unit^2 at 8 px/unit.
    exact = np.array([16.4**2, np.pi * 50.0, 3.6595 * 64.0])
    # Every sprite grows with scale at every orientation.
    assert (np.diff(area, axis=1) > 0).all()
    # Pixelisation only misclassifies pixels straddling the edge, so a single sprite can be off by up to ~30%
    # (the 7 px square at scale 0.5 has area 49 against 8.2^2 = 67). Over the 40 orientations the errors
    # mostly cancel; what remains is a small downward bias from counting half-covered pixels as empty
    # (~0.06 px per edge pixel), so the mean area is within -6%..+1% of exact * scale^2.
    mean_area = area.mean(axis=2)
    rel = mean_area / (exact[:, None] * scales[None, :] ** 2) - 1.0
    assert rel.min() > -0.06 and rel.max() < 0.01
    assert np.abs(area / (exact[:, None, None] * scales[None, :, None] ** 2) - 1.0).max() < 0.3
    # Ellipse < heart < square at every scale, like the analytic areas.
    assert (mean_area[1] < mean_area[2]).all() and (mean_area[2] < mean_area[0]).all()


def test_sample_factors(ds: DSprites) -> None:
    a = ds.sample_factors(4000, 7)
    b = ds.sample_factors(4000, 7)
    c = ds.sample_factors(4000, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, ds.sample_factors(4000, 8))
    assert a.shape == (4000, 6) and a.dtype == np.int64
    assert (a >= 0).all() and (a < np.array(ds.factor_sizes)).all()
    # Uniform marginals: every class appears, and the shape frequencies are near 1/3 (sd ~0.0075).
    for f, size in enumerate(ds.factor_sizes):
        assert len(np.unique(a[:, f])) == size
    np.testing.assert_allclose(np.bincount(a[:, 1]) / 4000, 1 / 3, atol=0.03)
    assert ds.sample_factors(0, 1).shape == (0, 6)


# ---------------------------------------------------------------- torch view


def test_torch_dataset_matches_render(ds: DSprites) -> None:
    idx = np.array([5, 1000, 300000, N_IMAGES - 1])
    tds = ds.torch_dataset(idx)
    assert len(tds) == 4
    img, cls = tds[2]
    assert img.dtype == torch.float32 and img.shape == (1, 64, 64)
    assert cls.dtype == torch.int64 and cls.shape == (6,)
    np.testing.assert_array_equal(img.numpy(), ds[300000])
    np.testing.assert_array_equal(cls.numpy(), ds.index_to_classes(300000))
    only = ds.torch_dataset(idx, return_factors=False)[0]
    assert isinstance(only, torch.Tensor)
    np.testing.assert_array_equal(only.numpy(), ds[5])
    with pytest.raises(IndexError):
        tds[4]
    with pytest.raises(IndexError):
        ds.torch_dataset([0, N_IMAGES])
    assert len(ds.torch_dataset()) == N_IMAGES


@pytest.mark.parametrize("num_workers", [0, 2])
def test_torch_dataloader(ds: DSprites, num_workers: int) -> None:
    idx = np.arange(0, N_IMAGES, 9973)[:40]
    loader = DataLoader(ds.torch_dataset(idx), batch_size=16, shuffle=False, num_workers=num_workers)
    imgs, classes = [], []
    for x, y in loader:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        imgs.append(x)
        classes.append(y)
    x = torch.cat(imgs).numpy()
    y = torch.cat(classes).numpy()
    assert x.shape == (40, 1, 64, 64) and y.shape == (40, 6)
    np.testing.assert_array_equal(x, ds[idx])
    np.testing.assert_array_equal(y, ds.index_to_classes(idx))

"""The card layout as data, its rendering, and placing it into a photo."""

import cv2
import numpy as np
import pytest

from veinscope.card import (
    CARD,
    camera_homography,
    composite_card,
    marker_bits,
    marker_corners_mm,
    mm_to_px_matrix,
    render_card,
    srgb_to_linear,
)


def _project(h, xy):
    q = np.c_[xy, np.ones(len(xy))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _jac_scale(h, xy, eps=1e-3):
    x, y = xy
    p = _project(h, np.array([[x, y], [x + eps, y], [x, y + eps]]))
    j = np.c_[(p[1] - p[0]) / eps, (p[2] - p[0]) / eps]
    s = np.linalg.svd(j, compute_uv=False)
    return np.sqrt(s[0] * s[1]), np.degrees(np.arccos(s[1] / s[0]))


def test_layout_is_a_credit_card_with_four_markers_inside():
    assert (CARD.width_mm, CARD.height_mm) == (85.6, 54.0)
    assert sorted(CARD.marker_ids) == [0, 1, 2, 3]
    boxes = []
    for m in CARD.markers:
        c = m.corners_mm()
        assert c.min() >= 2.0 and c[:, 0].max() <= CARD.width_mm - 2 and c[:, 1].max() <= CARD.height_mm - 2
        boxes.append((m.x_mm, m.y_mm, m.x_mm + m.size_mm, m.y_mm + m.size_mm))
    for p in CARD.patches:
        boxes.append((p.x_mm, p.y_mm, p.x_mm + p.w_mm, p.y_mm + p.h_mm))
        assert 0 < p.x_mm and p.x_mm + p.w_mm < CARD.width_mm and 0 < p.y_mm and p.y_mm + p.h_mm < CARD.height_mm
    for i, a in enumerate(boxes):  # nothing overlaps
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert {p.name for p in CARD.neutral_patches()} >= {"paper", "grey_122"}
    assert len(CARD.colour_patches()) >= 4
    assert CARD.to_dict()["markers"][0]["size_mm"] == CARD.markers[0].size_mm


def test_marker_bits_are_the_dictionary_markers():
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, CARD.dictionary))
    for i in CARD.marker_ids:
        bits = marker_bits(i)
        assert bits.shape == (d.markerSize + 2,) * 2
        assert bits[0].sum() == bits[-1].sum() == bits[:, 0].sum() == bits[:, -1].sum() == 0  # black border


@pytest.mark.parametrize("ppm", [6.0, 9.37, 15.0])
def test_render_shape_patches_and_marker_corners(ppm):
    img = render_card(ppm)
    assert img.shape == (round(54 * ppm), round(85.6 * ppm), 3) and img.dtype == np.uint8
    h = mm_to_px_matrix(ppm)
    for p in CARD.patches:
        cx, cy = _project(h, np.array([[p.x_mm + p.w_mm / 2, p.y_mm + p.h_mm / 2]]))[0]
        np.testing.assert_array_equal(img[int(round(cy)), int(round(cx))], p.srgb)
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, CARD.dictionary)), cv2.aruco.DetectorParameters())
    corners, ids, _ = det.detectMarkers(img)
    assert sorted(ids.ravel().tolist()) == [0, 1, 2, 3]
    truth = marker_corners_mm()
    for c, i in zip(corners, ids.ravel()):
        # OpenCV's own corners are good to about a pixel; the convention must agree to that
        assert np.abs(c.reshape(4, 2) - _project(h, truth[int(i)])).max() < 1.5


def test_render_is_area_antialiased():
    # at 2.5 px/mm a marker edge at 3 mm falls on pixel 7.5: the pixel is half black
    img = render_card(2.5)
    m = CARD.marker(0)
    row = int((m.y_mm + m.size_mm / 2) * 2.5)
    x_edge = m.x_mm * 2.5
    assert x_edge == 7.5
    assert abs(int(img[row, 7, 0]) - 128) <= 1
    assert img[row, 6, 0] == 255 and img[row, 8, 0] == 0


def test_ruler_has_41_ticks():
    ppm = 10.0
    img = render_card(ppm)
    ru = CARD.ruler
    row = int(round((ru.y_mm + ru.tick_mm[0] / 2) * ppm))
    x0, x1 = int((ru.x0_mm - 0.5) * ppm), int((ru.x0_mm + ru.length_mm + 0.5) * ppm)
    dark = img[row, x0:x1, 0] < 200
    starts = np.flatnonzero(dark[1:] & ~dark[:-1])
    assert len(starts) + int(dark[0]) == ru.length_mm + 1


@pytest.mark.parametrize("bad", [0, -1, float("nan"), 1e9])
def test_render_rejects_bad_scale(bad):
    with pytest.raises(ValueError, match="px_per_mm"):
        render_card(bad)


@pytest.mark.parametrize("tilt", [0.0, 15.0, 30.0])
def test_camera_homography_has_the_asked_scale_and_tilt(tilt):
    h = camera_homography(px_per_mm=8.0, centre_xy=(400, 300), tilt_deg=tilt, tilt_axis_deg=30, rotation_deg=70)
    c = (CARD.width_mm / 2, CARD.height_mm / 2)
    ppm, t = _jac_scale(h, c)
    assert ppm == pytest.approx(8.0, rel=1e-4)
    assert t == pytest.approx(tilt, abs=0.3)
    np.testing.assert_allclose(_project(h, np.array([c]))[0], (400, 300), atol=1e-6)


def test_composite_card_covers_the_card_area_and_keeps_the_input():
    bg = np.full((500, 700, 3), (180, 120, 100), np.uint8)
    before = bg.copy()
    h = camera_homography(px_per_mm=5.0, centre_xy=(350, 250), tilt_deg=20, tilt_axis_deg=10, rotation_deg=25)
    out, cov = composite_card(bg, h)
    np.testing.assert_array_equal(bg, before)
    corners = _project(h, CARD.outline_corners_mm())
    x, y = corners[:, 0], corners[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert cov.sum() == pytest.approx(area, rel=0.005)
    assert (out[cov == 0] == before[cov == 0]).all()
    # paper under the card's white reference is white (linear light 1.0)
    p = CARD.patches[-1]
    cx, cy = _project(h, np.array([[p.x_mm + p.w_mm / 2, p.y_mm + p.h_mm / 2]]))[0]
    assert out[int(round(cy)), int(round(cx))].min() >= 250


def test_srgb_to_linear_endpoints():
    np.testing.assert_allclose(srgb_to_linear([0, 255]), [0.0, 1.0])
    assert srgb_to_linear(118) == pytest.approx(0.181, abs=0.002)

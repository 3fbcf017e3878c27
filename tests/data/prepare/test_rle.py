"""Tests of the SIIM-ACR run-length encoding (docs/method.md#siim-acr-pneumothorax)."""

import numpy as np
import pytest

from mflag_monai.data.prepare.rle import rle_decode, rle_decode_union, rle_encode


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (32, 32), (40, 64)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_roundtrip_random_masks(shape, density):
    rng = np.random.default_rng(sum(shape) + int(density * 100))
    mask = (rng.random(shape) < density).astype(np.uint8)
    rle = rle_encode(mask)
    decoded = rle_decode(rle, *shape)
    assert decoded.dtype == np.uint8 and decoded.shape == shape
    np.testing.assert_array_equal(decoded, mask)
    # A canonical string survives decode -> encode unchanged.
    assert rle_encode(rle_decode(rle, *shape)) == rle


def test_empty():
    for s in ("-1", " -1", "-1 ", "\t-1\n", ""):
        assert not rle_decode(s, 4, 3).any()
    assert rle_encode(np.zeros((4, 3), np.uint8)) == "-1"


def test_orientation_first_column():
    # A run over the first k flat pixels fills column 0, rows 0..k-1.
    mask = rle_decode("0 3", 5, 4)
    expected = np.zeros((5, 4), np.uint8)
    expected[0:3, 0] = 1
    np.testing.assert_array_equal(mask, expected)
    # A run of exactly `height` pixels starting at `height` is the whole second column.
    mask = rle_decode("5 5", 5, 4)
    assert mask[:, 1].all() and mask.sum() == 5


def test_offsets_are_relative_to_previous_run_end():
    # Runs: pixels 1-2, then 2 after the end (index 3) -> pixels 5..7.
    mask = rle_decode("1 2 2 3", 4, 3)
    flat = mask.T.reshape(-1)
    np.testing.assert_array_equal(np.flatnonzero(flat), [1, 2, 5, 6, 7])


def test_two_rows_one_image_hand_fixture():
    # 4 rows x 5 columns image; two regions given as two CSV rows.
    # Row A: skip 1, 2 pixels (col 0 rows 1-2); skip 5 -> flat 8, 3 pixels (col 2 rows 0-2).
    # Row B: skip 17 -> flat 17..18 (col 4 rows 1-2).
    rows = [" 1 2 5 3", "17 2 "]
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [1, 0, 1, 0, 1],
            [1, 0, 1, 0, 1],
            [0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(rle_decode_union(rows, 4, 5), expected)
    np.testing.assert_array_equal(rle_decode_union(rows + ["-1"], 4, 5), expected)
    assert not rle_decode_union(["-1"], 4, 5).any()
    assert rle_encode(expected) == "1 2 5 3 6 2"


def test_invalid():
    with pytest.raises(ValueError):
        rle_decode("1 2 3", 4, 4)
    with pytest.raises(ValueError):
        rle_decode("10 10", 4, 4)

"""The qualitative strip of ``bench model``: one labelled row per completer, ground truth last, and an mp4."""

import cv2
import numpy as np

from inspatio_sim.bench.model_bench import write_strip


def test_strip_has_a_row_per_completer_and_ground_truth_last(tmp_path):
    frames = {"ground truth": np.full((3, 16, 20, 3), 10, np.uint8), "none": np.full((3, 16, 20, 3), 200, np.uint8),
              "star4": np.full((3, 16, 20, 3), 90, np.uint8)}
    write_strip(frames, tmp_path / "strip")
    png = cv2.imread(str(tmp_path / "strip.png"))
    assert png.shape == (3 * 16, 3 * 20, 3)
    assert png[-1, -1, 0] == 10 and png[15, -1, 0] == 200 and png[31, -1, 0] == 90  # rows: none, star4, truth
    assert (tmp_path / "strip.mp4").stat().st_size > 0

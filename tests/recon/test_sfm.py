"""Structure-from-motion pieces that need no COLMAP run: the sequential pair schedule, scene-cut segments."""

from __future__ import annotations

import numpy as np
import pytest

from inspatio_sim.errors import ConfigError, ReconError
from inspatio_sim.recon.sfm import (
    CUT_MIN_FEATURES,
    MIN_PAIR_INLIERS,
    MIN_WEAK_INLIERS,
    SfMOptions,
    bridge_feature_gaps,
    choose_segment,
    match_segments,
    sequential_pairs,
)


def test_sequential_pairs_are_successors_and_power_of_two_jumps():
    # overlap 1: the successor, plus jumps of 2 and 4 frames (8 is past the end)
    assert sequential_pairs(6, 1) == [(0, 1), (0, 2), (0, 4), (1, 2), (1, 3), (1, 5), (2, 3), (2, 4), (3, 4),
                                      (3, 5), (4, 5)]
    # overlap 3: successors 1..3 plus jumps of 2, 4, 8 (the jump of 2 coincides with a successor)
    assert sequential_pairs(9, 3) == [
        (0, 1), (0, 2), (0, 3), (0, 4), (0, 8),
        (1, 2), (1, 3), (1, 4), (1, 5),
        (2, 3), (2, 4), (2, 5), (2, 6),
        (3, 4), (3, 5), (3, 6), (3, 7),
        (4, 5), (4, 6), (4, 7), (4, 8),
        (5, 6), (5, 7), (5, 8),
        (6, 7), (6, 8),
        (7, 8),
    ]
    assert sequential_pairs(1, 10) == [] and sequential_pairs(0, 3) == []
    assert sequential_pairs(3, 10) == [(0, 1), (0, 2), (1, 2)]  # overlap beyond the clip: every pair once


def _chain(first: int, last: int, inliers: int = 200) -> dict[tuple[int, int], int]:
    return {(i, j): inliers for i, j in sequential_pairs(last + 1, 3) if i >= first}


def test_match_segments_split_at_a_cut_and_ignore_isolated_frames():
    n = 20
    two = {**_chain(0, 9), **{(i + 10, j + 10): c for (i, j), c in _chain(0, 9).items()}}
    assert match_segments(n, two) == [(0, 9), (10, 19)]
    wrong = {**two, (9, 10): MIN_WEAK_INLIERS - 1, (8, 12): 5}  # a few wrong matches do not join the segments
    assert match_segments(n, wrong) == [(0, 9), (10, 19)]
    far = {**two, (6, 12): MIN_PAIR_INLIERS - 1}  # nor do weak matches between frames far apart in time
    assert match_segments(n, far) == [(0, 9), (10, 19)]
    assert match_segments(n, {**two, (9, 10): MIN_PAIR_INLIERS}) == [(0, 19)]
    assert match_segments(n, {**two, (4, 15): MIN_PAIR_INLIERS}) == [(0, 19)]
    # a continuous shot across a plain wall: a few weak links between neighbours in time bridge the featureless
    # stretch (the `plain` preset: 16-22 inliers), so it is not refused as a cut
    plain = {**two, (8, 10): MIN_WEAK_INLIERS + 1, (9, 11): MIN_WEAK_INLIERS + 7}
    assert match_segments(n, plain) == [(0, 19)]
    # a blurred frame without matches is not a cut: its neighbours are joined over it by the longer jumps
    blurred = {p: c for p, c in _chain(0, 19).items() if 5 not in p}
    assert match_segments(n, blurred) == [(0, 19)]
    # a group of two frames is too small to be a segment of its own
    glitch = {p: c for p, c in _chain(0, 19).items() if (p[0] in (18, 19)) == (p[1] in (18, 19))}
    assert match_segments(n, glitch) == [(0, 17)]
    assert match_segments(n, {}) == []


def test_choose_segment_fails_naming_the_segments_or_keeps_the_longest():
    times = [i / 10 for i in range(48)]
    segments = [(0, 19), (20, 47)]
    with pytest.raises(ReconError) as e:
        choose_segment(segments, 48, "fail", times)
    msg = str(e.value)
    assert "scene cut" in msg and "recon.on_cut=longest" in msg and "\n" not in msg
    assert "frames 0-19 (0.00-1.90 s)" in msg and "frames 20-47 (2.00-4.70 s)" in msg
    assert choose_segment(segments, 48, "longest", times) == (20, 47)
    assert choose_segment([(0, 23), (24, 47)], 48, "longest") == (0, 23)  # a tie keeps the earlier segment
    assert choose_segment([(0, 47)], 48, "fail") == (0, 47)
    assert choose_segment([(2, 40)], 48, "fail") == (0, 47)  # one segment: every frame is mapped
    assert choose_segment([], 48, "fail") == (0, 47)


def test_on_cut_is_validated():
    SfMOptions(on_cut="longest").validate()
    with pytest.raises(ConfigError, match=r"recon\.on_cut"):
        SfMOptions(on_cut="split").validate()


def test_a_featureless_stretch_between_segments_is_one_shot_but_a_textured_boundary_is_a_cut():
    many = np.full(30, 500)
    segments = [(0, 9), (11, 29)]
    assert bridge_feature_gaps(segments, many) == segments  # both sides had features to match: a cut
    starved = many.copy()
    starved[10] = CUT_MIN_FEATURES - 1  # a bare wall fills frame 10 (the plain preset: 69-160 features)
    assert bridge_feature_gaps(segments, starved) == [(0, 29)]
    edge = many.copy()
    edge[9] = 50  # the last frame of the first segment is starved too
    assert bridge_feature_gaps([(0, 9), (10, 29)], edge) == [(0, 29)]
    # far from the boundary, few features change nothing
    far = many.copy()
    far[3] = 10
    assert bridge_feature_gaps([(0, 9), (10, 29)], far) == [(0, 9), (10, 29)]
    assert bridge_feature_gaps([], many) == []

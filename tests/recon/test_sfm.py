"""Structure-from-motion pieces that need no COLMAP run: the sequential pair schedule."""

from __future__ import annotations

from inspatio_sim.recon.sfm import sequential_pairs


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

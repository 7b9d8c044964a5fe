"""The frame conventions defined once in inspatio_sim.conventions."""

import numpy as np

from inspatio_sim.conventions import R_BODY_CAMERA


def test_body_from_camera_maps_optical_axes_to_rep103_body_axes():
    assert np.allclose(R_BODY_CAMERA.T @ R_BODY_CAMERA, np.eye(3)) and np.isclose(np.linalg.det(R_BODY_CAMERA), 1)
    forward, right, down = R_BODY_CAMERA[:, 2], R_BODY_CAMERA[:, 0], R_BODY_CAMERA[:, 1]
    np.testing.assert_array_equal(forward, [1, 0, 0])  # optical z = body x (forward)
    np.testing.assert_array_equal(right, [0, -1, 0])  # optical x = -body y (right)
    np.testing.assert_array_equal(down, [0, 0, -1])  # optical y = -body z (down)


def test_every_module_uses_the_one_body_from_camera_rotation():
    from inspatio_sim.control import robot
    from inspatio_sim.ros import messages

    assert robot.R_BODY_CAMERA is R_BODY_CAMERA and messages.R_BODY_CAMERA is R_BODY_CAMERA

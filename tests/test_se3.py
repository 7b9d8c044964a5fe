import numpy as np
import torch
from scipy.spatial.transform import Rotation

from inspatio_sim import se3


def test_matches_scipy_and_inverts():
    rot = Rotation.random(16, random_state=3)
    q = torch.tensor(rot.as_quat())
    np.testing.assert_allclose(se3.quat_to_matrix(q).numpy(), rot.as_matrix(), atol=1e-12)
    rv = torch.tensor(rot.as_rotvec())
    np.testing.assert_allclose(se3.axis_angle_to_matrix(rv).numpy(), rot.as_matrix(), atol=1e-12)
    small = torch.tensor([[1e-10, -2e-10, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(se3.axis_angle_to_matrix(small).numpy(),
                               Rotation.from_rotvec(small.numpy()).as_matrix(), atol=1e-15)
    t = torch.randn(16, 3, dtype=torch.float64)
    T = se3.from_rotation_translation(torch.tensor(rot.as_matrix()), t)
    eye = T @ se3.invert(T)
    np.testing.assert_allclose(eye.numpy(), np.broadcast_to(np.eye(4), (16, 4, 4)), atol=1e-12)
    p = torch.randn(16, 5, 3, dtype=torch.float64)
    back = se3.transform_points(se3.invert(T), se3.transform_points(T, p))
    np.testing.assert_allclose(back.numpy(), p.numpy(), atol=1e-12)
    expected = np.einsum("bij,bnj->bni", rot.as_matrix(), p.numpy()) + t.numpy()[:, None]
    np.testing.assert_allclose(se3.transform_points(T, p).numpy(), expected, atol=1e-12)


def test_euler_zyx_matches_scipy_and_round_trips():
    rng = np.random.default_rng(0)
    euler = np.c_[rng.uniform(-np.pi, np.pi, 32), rng.uniform(-1.5, 1.5, 32), rng.uniform(-np.pi, np.pi, 32)]
    expected = Rotation.from_euler("ZYX", euler[:, ::-1]).as_matrix()  # scipy takes (yaw, pitch, roll)
    R = se3.euler_zyx_to_matrix(torch.tensor(euler))
    np.testing.assert_allclose(R.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(se3.matrix_to_euler_zyx(R).numpy(), euler, atol=1e-9)
    nose = se3.euler_zyx_to_matrix(torch.tensor([0.0, 0.3, 0.0], dtype=torch.float64)) @ torch.tensor(
        [1.0, 0.0, 0.0], dtype=torch.float64)
    assert nose[2] < 0  # positive pitch looks down (REP-103)

"""ROS 2 tests run on loopback only; every node and its probe get a ROS domain that no other test or test run on
this machine holds meanwhile (``reserve_domain``), so parallel runs never meet."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _ros_loopback():
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    yield


@pytest.fixture
def ros_domain():
    """A ROS domain id held for the test (see ``inspatio_sim.ros.probe.reserve_domain``)."""
    pytest.importorskip("rclpy", reason="ROS 2 wheels absent (pip install -e .[ros]); CI installs them")
    from inspatio_sim.ros.probe import reserve_domain

    with reserve_domain() as domain:
        yield domain

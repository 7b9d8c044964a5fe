"""ROS 2 tests run on loopback only, in a domain of their own (derived from the pid) so parallel runs never meet."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _ros_loopback():
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
    yield

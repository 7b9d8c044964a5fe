"""ament_python package of inspatio_world_node (the node itself lives in the inspatio-sim package)."""

from setuptools import find_packages, setup

PACKAGE = "inspatio_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="inspatio-sim developers",
    maintainer_email="inspatio-sim@example.com",
    description="inspatio_world_node: a video-derived 4D world as a ROS 2 robot (camera topics out, cmd_vel in)",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": ["inspatio_world_node = inspatio_ros.world_node:main"]},
)

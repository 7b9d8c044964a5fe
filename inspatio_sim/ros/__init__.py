"""ROS 2 adapter: an rclpy node over the Simulator, and rosbag2 recording. rclpy is imported lazily."""

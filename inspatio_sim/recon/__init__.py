"""Video -> Scene reconstruction: frames, structure-from-motion, gravity and scale, dense depth, dynamic masks."""

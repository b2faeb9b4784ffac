"""What the service reads off a person photo: OpenPose body keypoints, SCHP human parsing, the
agnostic masks, and the DensePose image, each reproducing IDM-VTON's own preprocessing."""

"""The optimizer study's shared vocabulary: params, data, model, optimizer variants, training records."""

import os

# TensorFlow's C++ start-up notices (oneDNN, missing CUDA) would bury the stages' own output.
# Set TF_CPP_MIN_LOG_LEVEL=0 to see them again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

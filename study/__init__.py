"""The optimizer study's shared vocabulary: params, data, model, optimizer variants, training records."""

from study import quiet

quiet.install()  # TensorFlow's start-up notices would bury the stages' own lines (study/quiet.py)

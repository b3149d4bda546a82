"""Stage `prepare`: scale MNIST's pixels to [0, 1] and hold a validation split out of the training images.

The validation split is what the optimizers are compared on after every epoch; the test split is kept
as MNIST ships it, for the final evaluation only.
"""

import numpy as np

from study import params
from study.data import split_train_validation, verify_mnist, write_prepared
from study.errors import run_stage

RAW = "data/raw/mnist.npz"
PREPARED = "data/prepared"


def main() -> None:
    study = params.load()
    mnist = verify_mnist(RAW, study.data.expected)
    # Pixels in [0, 1], as the Keras primer feeds them, in float32, the dtype the network computes in.
    x_train = mnist["x_train"].astype(np.float32) / 255
    x_test = mnist["x_test"].astype(np.float32) / 255
    train, validation = split_train_validation(
        x_train, mnist["y_train"], study.prepare.validation_size, study.prepare.seed, study.prepare.train_size
    )
    write_prepared(PREPARED, {"train": train, "validation": validation, "test": (x_test, mnist["y_test"])})
    print(f"{PREPARED}: train {len(train[0])}, validation {len(validation[0])}, test {len(x_test)} images")


if __name__ == "__main__":
    run_stage(main)

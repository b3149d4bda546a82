"""Stage `prepare`: hold a validation split out of MNIST's training images; keep its test split as shipped.

The validation split is what the optimizers are compared on after every epoch; the test split is kept
for the final evaluation only. The splits keep MNIST's own pixels (uint8), so that data/prepared is
the same bytes on every machine; `data.load_split` scales them to [0, 1] as the network reads them.
"""

from study import params
from study.data import split_train_validation, verify_mnist, write_prepared
from study.errors import run_stage

RAW = "data/raw/mnist.npz"
PREPARED = "data/prepared"


def main() -> None:
    study = params.load()
    mnist = verify_mnist(RAW, study.data.expected)
    train, validation = split_train_validation(
        mnist["x_train"],
        mnist["y_train"],
        study.prepare.validation_size,
        study.prepare.seed,
        study.prepare.train_size,
    )
    test = (mnist["x_test"], mnist["y_test"])
    write_prepared(PREPARED, {"train": train, "validation": validation, "test": test})
    print(f"{PREPARED}: train {len(train[0])}, validation {len(validation[0])}, test {len(test[0])} images")


if __name__ == "__main__":
    run_stage(main)

"""Stage `download`: put a verified copy of MNIST at data/raw/mnist.npz.

Sources are tried in order, MNIST_MIRROR first when set, until one gives a file whose arrays match
params.yaml's data.expected; a machine without internet points MNIST_MIRROR at a local copy. Each
source is bounded in time and bytes (study/data.py), so a dead or hostile one fails in one line.
"""

from study import params
from study.data import fetch_mnist, sources_with_mirror
from study.errors import run_stage

RAW = "data/raw/mnist.npz"


def main() -> None:
    study = params.load()
    source = fetch_mnist(
        sources_with_mirror(study.data.sources),
        RAW,
        timeout_s=study.data.timeout_s,
        retries=study.data.retries,
        expected=study.data.expected,
    )
    print(f"{RAW}: verified MNIST from {source}")


if __name__ == "__main__":
    run_stage(main)

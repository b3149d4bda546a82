"""The machine's sustained matrix-multiply rate: `python benchmarks/cpu_peak.py` prints GFLOP/s.

What the study's arithmetic floor divides by (benchmarks/bench_study.py): a large float32 matrix
product, XLA-compiled as the trainer's programs are, on every core TensorFlow uses, timed after a
warm-up, the best of several repeats. Large matrices keep the cores' multiply-add units busy, so this
is about the most this CPU sustains; the study's own products (batch 1 to 32 rows) run below it.
"""

import json
import time

import study  # noqa: F401  (imported first: it quiets TensorFlow's start-up)

SIZE = 2048
REPEATS = 7


def main() -> None:
    import tensorflow as tf

    a = tf.random.stateless_uniform([SIZE, SIZE], seed=[0, 1])
    b = tf.random.stateless_uniform([SIZE, SIZE], seed=[0, 2])
    product = tf.function(lambda a, b: tf.reduce_sum(a @ b), jit_compile=True)
    product(a, b).numpy()  # compile
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        product(a, b).numpy()
        times.append(time.perf_counter() - start)
    print(json.dumps({"gflops": round(2 * SIZE**3 / min(times) / 1e9, 1), "size": SIZE, "repeats": REPEATS}))


if __name__ == "__main__":
    main()

"""Training and sampling throughput beside the seed tutorial's loop: `mnistgan bench`.

    python benchmarks/throughput.py [--seconds 10] [--repeats 3] [...]

The same as `mnistgan bench` (its options too); the measurement lives in `mnistgan.bench` so
that a fresh install can run it. See README, "Speed".
"""

import sys

from mnistgan.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])

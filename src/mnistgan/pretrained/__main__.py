"""`python -m mnistgan.pretrained RUN`: bundle a run's EMA generator into the package."""

from mnistgan.pretrained import main

main()

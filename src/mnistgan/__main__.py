"""`python -m mnistgan`: the same as the `mnistgan` command."""

from mnistgan.cli import main

if __name__ == "__main__":
    main()

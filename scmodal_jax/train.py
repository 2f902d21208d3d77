"""`python -m scmodal_jax.train +experiment=NAME [overrides]`: the training job (see :mod:`scmodal_jax.cli.train`)."""

from .cli.train import main

if __name__ == "__main__":
    main()

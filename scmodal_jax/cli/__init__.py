"""The command line: Hydra configs and the training job, the analysis subcommands, loggers, plots, sweeps.

The only layer that knows Hydra and W&B. Entry points: ``python -m scmodal_jax.train`` and
``python -m scmodal_jax.analyze`` (thin modules that call :mod:`scmodal_jax.cli.train` and
:mod:`scmodal_jax.cli.analyze`).
"""

"""The numeric model, pure JAX: networks, losses, hyperparameters and the jitted training step.

Nothing here knows about AnnData, files, Hydra or W&B; every function is testable against numpy.
"""

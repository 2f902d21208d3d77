"""Between the user's data and the jitted step: input checks, device placement, streaming, checkpoints."""

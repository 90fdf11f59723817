"""nn: neural-network modules, losses and optimizers built on autograd_lite."""

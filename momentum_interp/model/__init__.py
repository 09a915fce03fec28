"""The model: shear and filter maths, momentum attention, the hooked transformer, checkpoint I/O."""

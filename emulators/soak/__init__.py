"""`benchtwin soak`: every emulator under mixed load plus hostile clients, sampled until it shows growth or not."""

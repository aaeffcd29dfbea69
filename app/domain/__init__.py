"""The saga: steps, lifecycle state machine, compensation, and the worker that runs them."""

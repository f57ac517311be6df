"""The training engine: fits a model on tensors and returns data; it prints nothing."""

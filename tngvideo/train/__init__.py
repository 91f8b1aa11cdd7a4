"""Training: datasets, losses and loops used by tools/train_*.py."""

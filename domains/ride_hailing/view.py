"""The ride-hailing dashboard tabs (placeholder while being written)."""

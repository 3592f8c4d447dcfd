"""PyFlameRT."""

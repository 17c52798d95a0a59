"""What operators use: health, reflection, metrics, admin calls."""

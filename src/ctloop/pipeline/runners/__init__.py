"""pipeline/runners."""

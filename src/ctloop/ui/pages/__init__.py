"""The dashboard pages, one module per section."""

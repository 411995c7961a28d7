"""Policy layer (placeholder docstring, replaced below)."""

"""Spec files: schema, claim language, loader with line numbers."""

"""Recipes that produce the models shipped with tinyaudio (run from the repository root)."""

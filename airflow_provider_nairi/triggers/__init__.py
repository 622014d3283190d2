"""Nairi triggers."""

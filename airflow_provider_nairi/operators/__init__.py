"""Nairi operators."""

"""Nairi sensors."""

"""Airflow hooks for Nairi."""

"""Resources: what each Nairi resource is and how to read it (pure: no Airflow)."""

"""What each Nairi resource *is*, written once: its statuses, how a snapshot becomes a trigger event and an
XCom result, name look-ups, and the one wait (:mod:`.waiting`).

Pure like the client (no Airflow import): a resource function receives an API object
(:class:`~airflow_provider_nairi.client.api.NairiApi`) or a callable, never a hook. Operators, sensors and
triggers compose these modules; the hooks may too (a managed-agent hook waits with :mod:`.waiting`).
"""

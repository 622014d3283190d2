"""Apache Airflow provider for Nairi, the hosted platform of AI agents.

Importing this package is cheap on purpose (it runs at every DAG parse): no Airflow, no HTTP library.
"""

__version__ = "0.1.0"

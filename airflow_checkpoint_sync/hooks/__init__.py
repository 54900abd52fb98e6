"""Hooks: Feldera's REST API (``feldera``) and bucket credentials from Airflow connections."""

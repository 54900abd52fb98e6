"""The bad-input battery's Airflow DAGs for the 'freshness' cases (the table: tests/dags/bad_input_dags.py)."""

from dags.bad_input_dags import add_dags

add_dags("freshness", __file__)

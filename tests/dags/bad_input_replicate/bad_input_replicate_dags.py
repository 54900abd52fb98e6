"""The bad-input battery's Airflow DAGs for the 'replicate' cases (the table: tests/dags/bad_input_dags.py)."""

from dags.bad_input_dags import add_dags

add_dags("replicate", __file__)

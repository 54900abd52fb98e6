"""The bad-input battery's Airflow DAGs for the 'restore' cases (the table: tests/dags/bad_input_dags.py)."""

from dags.bad_input_dags import add_dags

add_dags("restore", __file__)

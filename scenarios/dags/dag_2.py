"""The original prototype's `dag_2`: one task, sleep 30 s, then APPEND a line "HI".

The file is named by the environment variable `ELASTIC_AIRFLOW_OUTPUT` of the worker,
else by the Airflow Variable `elastic_airflow_output`. The original overwrote the file,
so its demo's count (12 runs, 12 lines) could not work: this one appends.
The sleep can be shortened per run with the run's conf: `{"sleep": 2}`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from airflow.sdk import DAG, Variable, get_current_context, task

SLEEP_SECONDS = 30
OUTPUT_ENV = "ELASTIC_AIRFLOW_OUTPUT"
OUTPUT_VARIABLE = "elastic_airflow_output"


def _output_file() -> str:
    path = os.environ.get(OUTPUT_ENV) or Variable.get(OUTPUT_VARIABLE, default=None)
    if not path:
        raise RuntimeError(f"set {OUTPUT_ENV} on the workers or the Variable {OUTPUT_VARIABLE}")
    return path


with DAG(
    dag_id="dag_2",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=256,
    max_active_tasks=256,
    default_args={"retries": 0},
    tags=["elastic-airflow"],
):

    @task
    def task_1() -> None:
        conf = get_current_context()["dag_run"].conf or {}
        time.sleep(float(conf.get("sleep", SLEEP_SECONDS)))
        # One write on an O_APPEND descriptor: lines of concurrent tasks never interleave.
        fd = os.open(_output_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"HI\n")
        finally:
            os.close(fd)

    task_1()

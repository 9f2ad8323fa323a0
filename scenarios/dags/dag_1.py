"""The original prototype's `dag_1`: task_1 sleeps 100 s, then task_2 echoes.

Its demo triggers 12 runs at once: workers rise to 5 (not more), then fall back to 2.
The sleep can be shortened per run with the run's conf: `{"sleep": 5}`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from airflow.sdk import DAG, get_current_context, task

SLEEP_SECONDS = 100


with DAG(
    dag_id="dag_1",
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

    @task
    def task_2() -> None:
        print("HI")

    task_1() >> task_2()

"""The procrastinate application of the procrastinate peer, in the schema named by BENCH_PG_CONNINFO."""

from __future__ import annotations

import os
import time

import procrastinate
import psycopg

CONNINFO = os.environ.get("BENCH_PG_CONNINFO", "postgresql://postgres@127.0.0.1:5432/test")
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=CONNINFO))


@app.task(name="noop")
def noop() -> None:
    return None  # procrastinate keeps no results: completions are counted from its jobs' succeeded status


@app.task(name="stamp", pass_context=True)
def stamp(context: procrastinate.JobContext) -> None:
    started = time.time()
    with psycopg.connect(CONNINFO, autocommit=True) as connection:
        connection.execute("INSERT INTO bench_stamps (job_id, started) VALUES (%s, %s)", (context.job.id, started))

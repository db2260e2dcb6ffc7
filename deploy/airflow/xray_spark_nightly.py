# Rendered by `xray-spark deploy render --target airflow --conf conf/cluster.yaml`.
# Do not edit: change conf/cluster.yaml and render again (tests check they agree).
"""Nightly reprocessing of the beamtime archive with SparkSubmitOperator (Airflow 2.x,
apache-airflow-providers-apache-spark). The Spark connection `spark_default` names the master
(YARN); the packed environment (make dist) is shipped with --archives, the configuration with
--files. XRAY_SPARK_HOME is the project checkout on the Airflow workers (jobs/, conf/).
Rerun a failed night: clear its task in the Airflow UI, or
`airflow tasks clear xray_spark_nightly --start-date DATE --end-date DATE`.
"""
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

PROJECT = os.environ.get("XRAY_SPARK_HOME", '/opt/xray_spark')

with DAG(
    dag_id='xray_spark_nightly',
    schedule='0 2 * * *',
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["xray_spark"],
) as dag:
    nightly = SparkSubmitOperator(
        task_id='nightly',
        conn_id="spark_default",
        deploy_mode='cluster',
        name='xray_spark-nightly-{{ data_interval_end | ds }}',
        archives='hdfs:///apps/xray_spark/xray_spark-env.tar.gz#environment',
        files=f"{PROJECT}/conf/cluster.yaml",
        conf={'spark.pyspark.python': './environment/bin/python', 'spark.executor.instances': '4'},
        driver_memory='8g',
        application=f"{PROJECT}/jobs/nightly.py",
        application_args=['--conf', 'cluster.yaml', '--night', '{{ data_interval_end | ds }}'],
    )

#!/usr/bin/env bash
# Rendered by `xray-spark deploy render --target submit --conf conf/cluster.yaml`.
# Do not edit: change conf/cluster.yaml and render again (tests check they agree).
# stream: jobs/stream.py. Run from the project root; extra job arguments are appended.
# NIGHT=YYYY-MM-DD names the night a dated argument refers to (default: today, UTC).
set -euo pipefail
NIGHT=${NIGHT:-$(date -u +%F)}
exec "${SPARK_HOME:+$SPARK_HOME/bin/}spark-submit" \
  --master yarn \
  --deploy-mode cluster \
  --name xray_spark-stream \
  --archives 'hdfs:///apps/xray_spark/xray_spark-env.tar.gz#environment' \
  --files conf/cluster.yaml \
  --conf spark.pyspark.python=./environment/bin/python \
  --conf spark.executor.instances=4 \
  --conf spark.yarn.maxAppAttempts=3 \
  --conf spark.yarn.am.attemptFailuresValidityInterval=1h \
  --driver-memory 8g \
  jobs/stream.py --conf cluster.yaml "$@"

"""A real Horovod allreduce across two processes started by horovod.spark.run on two executors."""
import pytest

from xray_spark.jobs.doctor import _allreduce


@pytest.mark.horovod
def test_horovod_spark_run_allreduce_two_ranks(spark, cluster_config):
    import horovod.spark

    results = sorted(horovod.spark.run(_allreduce, num_proc=2, nics=set(cluster_config.horovod.nics),
                                       start_timeout=180, verbose=0))
    assert [r[0] for r in results] == [0, 1]
    assert all(size == 2 and total == 3.0 for _, size, total in results)

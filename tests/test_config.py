import textwrap
from pathlib import Path

import pytest
import yaml

from xray_spark.config import CONFIG_VERSION, Config, ConfigError, load_config, migrate, parse_override, to_dict

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_local_yaml_lists_every_default():
    """conf/local.yaml documents every key with its default value: the two never drift."""
    on_disk = yaml.safe_load((ROOT / "conf/local.yaml").read_text())
    assert on_disk == to_dict(Config())


def test_cluster_yaml_takes_master_and_root_from_environment(monkeypatch):
    monkeypatch.setenv("SPARK_MASTER", "spark://head:7077")
    monkeypatch.setenv("XRAY_DATA", "hdfs://nn:8020/xray")
    config = load_config(ROOT / "conf/cluster.yaml")
    assert config.spark.master == "spark://head:7077"
    assert config.paths.url("images") == "hdfs://nn:8020/xray/images"
    monkeypatch.delenv("SPARK_MASTER")
    assert load_config(ROOT / "conf/cluster.yaml").spark.master == "yarn"


def test_overrides_are_typed_and_applied_in_order():
    config = load_config(None, ["spark.executor_cores=3", "progress.interval_s=2", "horovod.nics=[lo, eth0]",
                                "spark.executor_cores=4", "progress.console=never"])
    assert config.spark.executor_cores == 4
    assert config.progress.interval_s == 2.0 and isinstance(config.progress.interval_s, float)
    assert config.horovod.nics == ["lo", "eth0"]
    assert config.progress.console == "never"


@pytest.mark.parametrize("override, fragment", [
    ("spark.mastr=local", "unknown key 'spark.mastr'; allowed in section 'spark': master"),
    ("nosuch.key=1", "unknown key 'nosuch'"),
    ("spark.executor_cores=two", "spark.executor_cores = 'two': expected int"),
    ("horovod.num_proc=0", "horovod.num_proc = 0: must be >= 1"),
    ("progress.console=yes", "progress.console = 'yes': allowed values are 'auto', 'always', 'never'"),
    ("tables.image_size=4096", "tables.image_size = 4096: must be <= 2048"),
    ("horovod.nics=lo", "horovod.nics = 'lo': expected a list"),
    ("spark=local", "spark = 'local': expected a section"),
    ("version=1", "--set cannot change the schema version"),
    ("spark.master", "expected section.key=value"),
])
def test_bad_values_fail_naming_key_value_and_what_is_allowed(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert fragment in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="needs an integer schema version"):
        load_config(write(tmp_path, "spark: {master: local}\n"))
    with pytest.raises(ConfigError, match="reads versions 1..2"):
        load_config(write(tmp_path, f"version: {CONFIG_VERSION + 1}\n"))
    with pytest.raises(ConfigError, match="environment variable NOPE_NOT_SET is not set"):
        load_config(write(tmp_path, "version: 2\nspark: {master: '${NOPE_NOT_SET}'}\n"))


def test_version_1_file_is_migrated(tmp_path):
    """A v1 configuration (top-level data_root) still loads, with its root under paths."""
    path = write(tmp_path, """\
        version: 1
        data_root: /beamtime/2024-03
        spark: {master: "local[2]"}
        """)
    config = load_config(path)
    assert config.version == CONFIG_VERSION
    assert config.paths.root == "/beamtime/2024-03"
    assert config.spark.master == "local[2]"
    assert migrate({"version": 1, "data_root": "x"}) == {"version": 2, "paths": {"root": "x"}}


def test_parse_override_nests_and_types():
    assert parse_override("a.b.c=3") == {"a": {"b": {"c": 3}}}
    assert parse_override("spark.options={spark.x: '1'}") == {"spark": {"options": {"spark.x": "1"}}}


def test_paths_resolve_to_urls(tmp_path):
    config = load_config(None, [f"paths.root={tmp_path}"])
    assert config.paths.url("images") == (tmp_path / "images").as_uri()
    assert load_config(None, ["paths.images=s3a://bucket/images"]).paths.url("images") == "s3a://bucket/images"

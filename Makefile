# Every target creates or updates .venv by itself: a fresh machine needs only Python 3.11 and Java 17.
SHELL := /bin/bash
PYTHON ?= $(shell command -v /usr/bin/python3.11 || command -v python3.11)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Horovod is compiled against the installed TensorFlow; its wheel is cached under a key of both versions.
HVD_VERSION := $(shell sed -n 's/^horovod==//p' constraints.txt)
TF_VERSION := $(shell sed -n 's/^tensorflow-cpu==//p' constraints.txt)
HVD_WHEELHOUSE ?= $(HOME)/.cache/xray_spark/wheelhouse/horovod-$(HVD_VERSION)_tf-$(TF_VERSION)_cp311_cpu-gloo
HVD_FLAGS := HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
             HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo
export SPARK_LOCAL_IP ?= 127.0.0.1
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYSPARK_PYTHON = $(abspath $(BIN))/python
export PYSPARK_DRIVER_PYTHON = $(abspath $(BIN))/python

.PHONY: venv chromium demo test bench dist clean

venv: $(STAMP)

$(STAMP): constraints.txt pyproject.toml Makefile
	@echo "== setting up $(VENV) (first time: ~4 min; later: seconds)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U 'pip>=24'
	$(BIN)/pip install -q -c constraints.txt setuptools wheel packaging cmake
	grep -v '^horovod==' constraints.txt > $(VENV)/requirements-no-horovod.txt
	$(BIN)/pip install -q -r $(VENV)/requirements-no-horovod.txt
	if ! ls $(HVD_WHEELHOUSE)/horovod-$(HVD_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "== building horovod $(HVD_VERSION) against tensorflow $(TF_VERSION) (~2 min, once)"; \
	  mkdir -p $(HVD_WHEELHOUSE) && \
	  PATH=$(abspath $(BIN)):$$PATH $(HVD_FLAGS) $(BIN)/pip wheel -q --no-cache-dir --no-deps \
	    --no-build-isolation -w $(HVD_WHEELHOUSE) 'horovod==$(HVD_VERSION)'; fi
	$(BIN)/pip install -q --no-index --find-links $(HVD_WHEELHOUSE) -c constraints.txt 'horovod[spark]==$(HVD_VERSION)'
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xray-spark demo

# The live page's tests drive a real headless Chromium (Selenium + the system chromedriver; root, Debian/Ubuntu).
chromium:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver)

test: $(STAMP) chromium
	$(BIN)/python -m pytest tests

bench: $(STAMP)
	$(BIN)/python -m bench

# dist/: the wheel, and the relocatable environment that spark-submit ships to executors:
#   PYSPARK_PYTHON=./environment/bin/python spark-submit --archives dist/xray_spark-env.tar.gz#environment ...
# venv-pack cannot pack an editable install, so the wheel goes into a plain venv of its own,
# dist/env, built from the same pins (dependencies reinstalled only when the pins change).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL := dist/xray_spark-$(VERSION)-py3-none-any.whl
DIST_ENV := dist/env
ENV_ARCHIVE := dist/xray_spark-env.tar.gz
PACKAGE_FILES := pyproject.toml $(shell find xray_spark -type f \( -name '*.py' -o -name '*.csv' -o -name '*.yaml' \))
# Not packed: the JVM side comes from the cluster's own Spark, TensorFlow's C++ headers only serve builds.
PACK_EXCLUDES := --exclude 'lib/python3.11/site-packages/pyspark/jars/*' \
                 --exclude 'lib/python3.11/site-packages/tensorflow/include/*'

dist: $(ENV_ARCHIVE)

$(WHEEL): $(STAMP) $(PACKAGE_FILES)
	rm -f dist/xray_spark-*.whl
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .

$(DIST_ENV).installed: constraints.txt pyproject.toml | $(WHEEL)
	rm -rf $(DIST_ENV) && $(PYTHON) -m venv $(DIST_ENV)
	$(DIST_ENV)/bin/pip install -q --find-links $(HVD_WHEELHOUSE) -c constraints.txt $(WHEEL)
	touch $@

$(ENV_ARCHIVE): $(WHEEL) $(DIST_ENV).installed
	$(DIST_ENV)/bin/pip install -q --no-deps --force-reinstall $(WHEEL)
	$(DIST_ENV)/bin/pip check
	$(BIN)/venv-pack -q -f -p $(DIST_ENV) -o $@ --compress-level 1 $(PACK_EXCLUDES)

clean:
	rm -rf $(VENV) dist build *.egg-info

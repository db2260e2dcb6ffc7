"""Deployment recipes rendered from one source of truth (``recipes.py``): spark-submit scripts,
Kubernetes spark-operator applications, a Databricks Asset Bundle, an Airflow DAG and the Docker
images, written under deploy/ by ``xray-spark deploy render``."""

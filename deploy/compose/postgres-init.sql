-- MLflow keeps its tables in their own database next to lockgate's rollout store.
CREATE DATABASE mlflow OWNER lockgate;

-- One database per service (the compose file's POSTGRES_USER owns both).
CREATE DATABASE mlflow;
CREATE DATABASE prefect;

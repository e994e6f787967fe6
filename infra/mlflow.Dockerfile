# MLflow tracking server with its basic-auth app, the PostgreSQL driver and the S3 client
# (the official image has none of them). Versions match realspace's pins.
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" psycopg2-binary==2.9.10 boto3==1.38.0
EXPOSE 5000

# MLflow tracking server with the PostgreSQL driver and the S3 client (the official image
# has neither). Versions match realspace's pins.
FROM python:3.11-slim
RUN pip install --no-cache-dir mlflow==3.17.2 psycopg2-binary==2.9.10 boto3==1.38.0
EXPOSE 5000

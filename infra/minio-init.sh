#!/bin/sh
# Run by compose's minio-init service (image minio/mc), at every `up` (each step may run
# again): the artifact bucket, and MLflow's own MinIO user, whose policy
# (minio-mlflow-policy.json) allows that bucket only. mc reaches MinIO as root through
# the alias MC_HOST_store, set by environment. The one secret on a command line is the MLflow
# user's secret key, for the instant `mc admin user add` runs in this one-shot container.
set -eu
mc mb --ignore-existing store/realspace-artifacts
mc admin policy create store realspace-mlflow /init/mlflow-policy.json
mc admin user add store "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
info=$(mc admin user info store "$MLFLOW_S3_ACCESS_KEY")
case "$info" in
  *realspace-mlflow*) ;;
  *) mc admin policy attach store realspace-mlflow --user "$MLFLOW_S3_ACCESS_KEY" ;;
esac

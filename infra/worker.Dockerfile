# A Ray node for realspace on NVIDIA GPUs: Ray 2.60.0 on CUDA, torch 2.13.0 for CUDA 12.6,
# realspace with its cluster extras. Build from the repository root:
#   docker build -f infra/worker.Dockerfile -t realspace-worker:0.1.0 .
# The same image serves the head node (which runs `realspace sweep`) and the GPU workers.
FROM rayproject/ray:2.60.0-py311-gpu

RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126

WORKDIR /opt/realspace
COPY pyproject.toml README.md ./
COPY src ./src
COPY flows ./flows
COPY tasks ./tasks
COPY configs ./configs
RUN pip install --no-cache-dir ".[cluster]"

# side effects off (see flows/runtime.py QUIET_ENV)
ENV RAY_USAGE_STATS_ENABLED=0 DO_NOT_TRACK=true PREFECT_SERVER_ANALYTICS_ENABLED=false

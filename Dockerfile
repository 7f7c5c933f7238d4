# The kube-node image the Helm chart runs: `kube-node run`, as a non-root user, on a read-only root filesystem.
#   docker build -t ghcr.io/kube-node/kube-node:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kube_node kube_node
COPY nodeset_controller nodeset_controller
COPY autoscaler_provider autoscaler_provider
COPY proto proto
RUN python -m venv /opt/kube-node && /opt/kube-node/bin/pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/kube-node /opt/kube-node
ENV PATH=/opt/kube-node/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080 8086
ENTRYPOINT ["kube-node"]
CMD ["run"]

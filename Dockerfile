# The koos operator image: multi-stage, slim, non-root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/koos \
 && /opt/koos/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/koos/bin/pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/koos /opt/koos
ENV PATH=/opt/koos/bin:$PATH PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["koos"]

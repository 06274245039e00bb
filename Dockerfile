# The sojourn API and worker image (docker-compose.yml runs `sojourn api`, `sojourn worker`, `sojourn migrate`).
FROM python:3.12-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8080
CMD ["sojourn", "api"]

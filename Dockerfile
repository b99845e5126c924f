# Airflow image with the rekfeedback provider installed from this checkout, at the pinned versions.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
COPY --chown=airflow:0 requirements.lock pyproject.toml README.md /opt/rekfeedback/
COPY --chown=airflow:0 plugins /opt/rekfeedback/plugins
# The image already has Airflow; the lock only adds or pins what the provider needs.
RUN pip install --no-cache-dir -r /opt/rekfeedback/requirements.lock \
 && pip install --no-cache-dir --no-deps /opt/rekfeedback

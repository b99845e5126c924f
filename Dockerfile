# Airflow image with the rekfeedback provider installed from this checkout, at the pinned versions.
#   docker build .                 the production image: the runtime set only (requirements.lock), no test tool
#   docker build --target local .  adds the local tooling (emulator, seed-local) for compose's `local` profile
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11 AS runtime
COPY --chown=airflow:0 requirements.lock pyproject.toml README.md /opt/rekfeedback/
COPY --chown=airflow:0 plugins /opt/rekfeedback/plugins
# The image already has Airflow; the lock only adds or pins what the provider and a Celery + PostgreSQL deployment need.
RUN pip install --no-cache-dir -r /opt/rekfeedback/requirements.lock \
 && pip install --no-cache-dir --no-deps /opt/rekfeedback

# The emulator and the local set-up (moto and the rekfeedback-local command): never in the production image.
FROM runtime AS local
COPY --chown=airflow:0 requirements-dev.lock /opt/rekfeedback/
COPY --chown=airflow:0 local /opt/rekfeedback/local
RUN pip install --no-cache-dir -r /opt/rekfeedback/requirements-dev.lock \
 && pip install --no-cache-dir --no-deps /opt/rekfeedback/local

# The default target (last stage): the production image.
FROM runtime AS production

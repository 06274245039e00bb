#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised: sojourn's own database and role.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE sojourn LOGIN PASSWORD '${SOJOURN_DB_PASSWORD}';
CREATE DATABASE sojourn OWNER sojourn;
SQL

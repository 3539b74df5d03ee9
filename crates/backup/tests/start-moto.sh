#!/bin/sh
# Starts moto's S3 API server on 127.0.0.1:PORT in the foreground, installing it from
# PyPI first when it is missing. The Rust S3 test runs this and stops it when done.
set -eu
port="${1:?usage: start-moto.sh PORT}"
if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install --quiet 'moto[server]' >&2
fi
exec moto_server -H 127.0.0.1 -p "$port"

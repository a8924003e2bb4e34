#!/bin/sh
# The image's entrypoint: one mode per compose service, configured by environment variables only.
#
#   worker            mipro worker; interceptor on 0.0.0.0:$MIPRO_INTERCEPTOR_PORT (8400), task queue
#                     $MIPRO_TASK_QUEUE (mipro); each replica gives task apps http://<its hostname>:PORT
#                     unless MIPRO_INTERCEPTOR_PUBLIC_URL is set (then every replica gives that URL: set it
#                     only for a single worker, or per worker service)
#   api               mipro api on 0.0.0.0:8000; the API reads TEMPORAL_*, MIPRO_TASK_QUEUE, MIPRO_API_KEYS,
#                     MIPRO_API_KEYS_FILE and MIPRO_API_DATA_DIR itself
#   simllm            the simulated LLM on 0.0.0.0:8300 (SIMLLM_* variables: mipro/simllm/settings.py)
#   banking77         the example task app on 0.0.0.0:8102, key from ENVIRONMENT_API_KEY
#   mipro ARGS...     the CLI (mipro start adds --task-queue $MIPRO_TASK_QUEUE when set)
#   anything else     run as given
#
# Extra arguments after a mode are passed on (docker compose run worker --max-rollouts 64).
set -eu

mode="${1:-worker}"
[ "$#" -gt 0 ] && shift

case "$mode" in
  worker)
    set -- --interceptor-host 0.0.0.0 --interceptor-port "${MIPRO_INTERCEPTOR_PORT:-8400}" \
      --task-queue "${MIPRO_TASK_QUEUE:-mipro}" "$@"
    if [ -n "${MIPRO_INTERCEPTOR_PUBLIC_URL:-}" ]; then
      set -- --interceptor-public-url "$MIPRO_INTERCEPTOR_PUBLIC_URL" "$@"
    fi
    if [ -n "${MIPRO_MAX_ROLLOUTS:-}" ]; then
      set -- --max-rollouts "$MIPRO_MAX_ROLLOUTS" "$@"
    fi
    exec mipro worker "$@"
    ;;
  api)
    exec mipro api --host 0.0.0.0 --port 8000 "$@"
    ;;
  simllm)
    exec python -m mipro.simllm --host 0.0.0.0 --port 8300 "$@"
    ;;
  banking77)
    exec python -m mipro.taskapps.banking77 --host 0.0.0.0 --port 8102 "$@"
    ;;
  mipro)
    if [ "${1:-}" = start ] && [ -n "${MIPRO_TASK_QUEUE:-}" ]; then
      shift
      set -- start --task-queue "$MIPRO_TASK_QUEUE" "$@"
    fi
    exec mipro "$@"
    ;;
  *)
    exec "$mode" "$@"
    ;;
esac

#!/bin/sh
# One-shot (temporalio/admin-tools image): wait for the Temporal server, create the namespace and register
# MIPRO's search attributes on it (MIPRO_SEARCH_ATTRIBUTES: "Name=Type ...", as mipro/search_attributes.py
# declares them). Safe to run again: what exists is kept.
set -eu
: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${TEMPORAL_RETENTION:=720h}"
: "${MIPRO_SEARCH_ATTRIBUTES:?MIPRO_SEARCH_ATTRIBUTES is not set}"
export TEMPORAL_ADDRESS

# A new namespace reaches the server's namespace cache some seconds after it is created: retry until then.
retry() {
  tries=0
  until "$@"; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || return 1
    sleep 2
  done
}

until temporal operator cluster health >/dev/null 2>&1; do
  echo "waiting for Temporal at $TEMPORAL_ADDRESS"
  sleep 2
done

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $TEMPORAL_NAMESPACE exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION"
fi

existing="$(retry temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE")"
for pair in $MIPRO_SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    retry temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" \
      --type "$type"
  fi
done
echo "TEMPORAL_SETUP_READY"

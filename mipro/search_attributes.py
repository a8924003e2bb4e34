"""Custom search attributes: what the Temporal UI's list view and visibility queries can filter on.

They must be registered on the namespace before a workflow upserts them: `mipro server` and the test
environment do it; on a cluster, run `temporal operator search-attribute create` once per key (see
docker-compose.yml). A job started on a namespace without them runs without upserting them.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STATUS = SearchAttributeKey.for_keyword("MiproStatus")
ORG = SearchAttributeKey.for_keyword("MiproOrg")
BEST_SCORE = SearchAttributeKey.for_float("MiproBestScore")
TRIALS = SearchAttributeKey.for_int("MiproTrials")
SPEND_USD = SearchAttributeKey.for_float("MiproSpendUsd")

ALL = [STATUS, ORG, BEST_SCORE, TRIALS, SPEND_USD]

CLI_TYPES = {2: "Keyword", 4: "Double", 3: "Int"}  # IndexedValueType -> CLI type name


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={CLI_TYPES[int(key.indexed_value_type)]}"]
    return flags

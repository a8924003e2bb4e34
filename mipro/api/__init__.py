"""The REST jobs API: `/api/prompt-learning/online/...`, backed by Temporal alone (no second database).

app.py (routes) -> service.py (job operations on Temporal, scoped to the caller's org) -> starter/jobs.py.
auth.py maps bearer keys to orgs, event_hub.py shares one event poller per job among SSE clients,
saved_configs.py keeps named configs as files, errors.py gives every error one body shape.
"""

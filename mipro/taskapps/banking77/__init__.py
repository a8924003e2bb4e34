"""Example banking77 task app, wire-compatible with synth-ai's banking77 task app (Gen B contract).

Run it with `python -m mipro.taskapps.banking77 --port 8102`; build it in code with
`create_app(load_banking77(data_dir))`.
"""

from mipro.taskapps.banking77.app import RolloutStats, create_app
from mipro.taskapps.banking77.data import Banking77Data, Row, load_banking77

__all__ = ["Banking77Data", "RolloutStats", "Row", "create_app", "load_banking77"]

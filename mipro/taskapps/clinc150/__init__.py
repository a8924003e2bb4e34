"""Example CLINC150 task app: 150 intents, a plain-text answer format (`Intent: <label>`), no tools.

Run it with `python -m mipro.taskapps.clinc150 --port 8103`; build it in code with
`create_app(load_clinc150(data_dir))`. Data: `../shared/datasets/clinc150` or `CLINC150_DATA_DIR`.
"""

from mipro.taskapps.clinc150.app import create_app
from mipro.taskapps.clinc150.data import Clinc150Data, load_clinc150

__all__ = ["Clinc150Data", "create_app", "load_clinc150"]

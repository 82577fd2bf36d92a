"""The paper end to end: models, configuration and the staged pipeline (`run.py`); see README.md."""

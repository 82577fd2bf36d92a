"""Make the shared toy training script (``toy_training.py``) importable by the tests beside it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Makes the training-data generator (models/data/*.py) importable by the tests; realdata.py
# itself puts bench/quality (sfz.py, drumkit.py) on the path.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "models", "data"))

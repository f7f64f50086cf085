# Makes the evaluation pipeline's modules (bench/quality/*.py) importable by the tests.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "bench", "quality"))

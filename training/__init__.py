"""Fine-tuning, calibration and export of cross-encoders (``pip install 'crossrank[train]'``).

Importing this package does not import torch; each entry point imports what it needs.
"""

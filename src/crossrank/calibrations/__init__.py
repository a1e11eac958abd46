"""Calibrations fitted by the project for the models it ships (JSON files, one per model revision)."""

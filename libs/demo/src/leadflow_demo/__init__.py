"""`leadflow demo`."""

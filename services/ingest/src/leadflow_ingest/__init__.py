"""leadflow ingest."""

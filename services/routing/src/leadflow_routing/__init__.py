"""leadflow routing."""

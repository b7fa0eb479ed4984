"""leadflow attribution."""

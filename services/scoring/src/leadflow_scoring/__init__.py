"""leadflow scoring."""

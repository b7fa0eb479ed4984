"""leadflow platform: what every leadflow service shares."""

"""leadflow reporting."""

"""The probe service: a real leadflow service in miniature, for the platform's tests."""

"""Models of the differential harness (tests/differential): every field type Django ships."""

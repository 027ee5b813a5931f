"""cincer-service: interactive label cleaning with counter-examples."""

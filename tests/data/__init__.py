"""Data set tests (a package, so that its modules' names do not clash with the metrics tests')."""

"""Evidence: the cloud's own signed log, the witness log and its timestamps, and the bundles and
reports exported for a case."""

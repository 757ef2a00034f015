"""Operations helpers both sides need alike (configuration from the environment, ...).

It imports nothing of ours, so the appliance and the cloud may both use it without the cloud ever
importing appliance code (the import-linter contracts in pyproject.toml say so).
"""

"""The cloud service: verifies and stores the appliances' signed logs, and shows head office
what every plant recorded. Imports ``ledger`` and nothing else of ours."""

"""The appliances head office knows: their registry and keys, their registration files and broker credentials."""

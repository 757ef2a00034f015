"""The plant's roster on the appliance: the HR office's sheets imported, and the master tables they fill."""

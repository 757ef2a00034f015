"""What arrives from the appliances: signed batches parsed, verified record by record, and stored lane by lane."""

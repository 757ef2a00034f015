"""What head office tells each plant's appliances: the configuration document built from master
data, stored as signed versions and pushed."""

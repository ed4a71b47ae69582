"""The NYC flights 2013 reference scenario."""

"""GraphSpace REST API v1: the contract the official graphspace-python client speaks."""

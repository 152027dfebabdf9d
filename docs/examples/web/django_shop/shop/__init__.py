"""The example shop as a Django app."""

"""An example unlearnspec plug-in: gradient ascent with a per-sequence loss cap."""

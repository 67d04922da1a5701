"""Closed train-and-filter loops: score -> select -> curriculum export -> train -> reward ->
update the agent, for several arms side by side (curator/loop/driver.py)."""

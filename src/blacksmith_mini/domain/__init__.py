"""Pure model and decisions: jobs, VMs, pools, the VM state machine and the planner.

Nothing in this package performs I/O, touches asyncio or imports SQLAlchemy. Functions take
``now`` (epoch seconds) and immutable values, and return values.
"""

"""Beyond the room: who is told of an alert nobody in the office has answered, in what order,
over which channels, and how their answer stops the chain.

- policy.py: the responders, their on-call hours and the steps, from the config file;
- chain.py: the chain's state in the database (fired in writer transactions, crash-safe);
- channels/: one module per medium (mesh, email, SMS, push), one interface;
- sender.py: the thread that claims queued notifications and sends them.
"""

"""The watch over the wearers between alerts: a bracelet that falls silent, a check-in that does
not come, a battery running down. Each opens an alert (or writes a warning) that the escalation
chain carries beyond the room; none of it is ever published."""

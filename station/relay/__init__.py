"""The relay: publish incidents to social networks and partners once there is internet — once,
safely, within the platforms' limits and the wearer's consent."""

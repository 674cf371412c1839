"""Many stations, one network: this station's side of the MQTT link to the NGO's hub (station/hub).
Events leave from a durable queue (network_queue), answers come back on the station's own topic."""

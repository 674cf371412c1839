"""The NGO's hub (`station hub`): every station's events over MQTT merged into one view, the same
mesh packet heard by several stations one incident, an acknowledgement anywhere told everywhere,
and the one claim per (incident, public destination) that makes one post across the network."""

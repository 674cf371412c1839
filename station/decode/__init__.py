"""Pure decoders: bytes and protobufs in, observations out. No I/O, no clock, no database."""

"""The simulated Exchange Online tenant: a tenant model (cmdlet handlers over an in-memory
dataset) and transports that serve it (PSRP over WSMan; later REST)."""
